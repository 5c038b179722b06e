# frozen_string_literal: true

require_relative 'test_helper'
require_relative 'reference/libposthog_sdk'
require_relative 'reference/compare'
require_relative 'test_rails_app'
require 'open3'
require 'rbconfig'

# The reference scenarios (reference/scenarios.rb) run with LibPostHog::Client
# (posthog-ruby's API, capture v0 as posthog-ruby posts to /batch/) against
# the local ingestion server, compared field by field with what posthog-ruby
# 3.23.2 sent for the same scripts (fixtures/posthog-ruby-3.23.2/, recorded
# by tools/record_ruby_reference.rb). Every difference must be listed in
# reference/allowed_differences.json with its reason, and every entry there
# must still occur. When posthog-ruby can be loaded (its gem, RUBYLIB, or
# POSTHOG_RUBY_LIB=<checkout>/lib), it is recorded again live and must give
# the fixtures exactly, so they cannot silently rot.
class TestReference < LibPostHogTest
  class << self
    # scenario name => LibPostHog's result (each scenario runs once per suite)
    def results
      @results ||= {}
    end
  end

  def setup
    super
    @old_logger = LibPostHog.instance_variable_get(:@logger)
  end

  def teardown
    LibPostHog.logger = @old_logger
    super
  end

  def fixture(name)
    path = File.join(RubyRef::FIXTURES, "#{name}.json")
    assert File.exist?(path), "no fixture #{path} (tools/record_ruby_reference.rb writes it)"
    JSON.parse(File.read(path))
  end

  def ours(name)
    self.class.results[name] ||= RubyRef.run(name, RubyRef::LIBPOSTHOG, IngestServer)
  end

  def unexplained(name)
    RubyRef::Compare.diff(name, fixture(name), ours(name)).reject { |d| RubyRef::Compare.allowing(d) }
  end

  RubyRef::Scenarios.names.each do |name|
    define_method("test_same_as_posthog_ruby_#{name}") do
      bad = unexplained(name)
      assert_empty bad, "differences from posthog-ruby #{RubyRef::VERSION} not in " \
                        "reference/allowed_differences.json:\n#{bad.join("\n")}"
    end
  end

  def test_fixtures_name_their_source
    meta = JSON.parse(File.read(File.join(RubyRef::FIXTURES, 'meta.json')))
    assert_equal 'posthog-ruby', meta['sdk']
    assert_equal RubyRef::VERSION, meta['version']
    assert_match(/[0-9a-f]{40}/, meta['source'].to_s)
    assert_equal (RubyRef::Scenarios.names + ['rails_app']).sort, meta['scenarios'].sort
    readme = File.read(File.join(RubyRef::FIXTURES, 'README.md'))
    assert_includes readme, meta['source'][/[0-9a-f]{40}/]
  end

  # An entry that no longer matches any difference is stale: the binding
  # was fixed, or the entry's path is wrong.
  def test_every_allowed_difference_occurs
    diffs = RubyRef::Scenarios.names.flat_map { |n| RubyRef::Compare.diff(n, fixture(n), ours(n)) }
    diffs += RubyRef::Compare.diff('rails_app', fixture('rails_app'), TestRailsApp.run_app)
    unused = RubyRef::Compare.allowed.reject do |e|
      diffs.any? { |d| RubyRef::Compare.allowing(d).equal?(e) }
    end
    assert_empty unused.map { |e| e.reject { |k, _| k == 're' } }, 'allowed differences that no longer occur'
  end

  # The comparison itself: a changed value, a missing field and an extra
  # event are each one difference, at their path.
  def test_compare_finds_differences
    a = { 'calls' => [{ 'call' => 'x', 'returned' => true, 'log' => [] }],
          'events' => [{ 'event' => 'e', 'properties' => { 'p' => 1, 'q' => 2 } }] }
    b = { 'calls' => [{ 'call' => 'x', 'returned' => false, 'log' => [] }],
          'events' => [{ 'event' => 'e', 'properties' => { 'p' => 1.5 } }, { 'event' => 'f' }] }
    d = RubyRef::Compare.diff('s', a, b).map { |x| [x.path, x.to_s] }
    assert_equal ['/calls/x/returned', '/events/e#0/properties/p', '/events/e#0/properties/q', '/events/f#0'],
                 d.map(&:first)
    assert_includes d[2][1], 'libposthog (absent)'
    assert_empty RubyRef::Compare.diff('s', a, a)
    refute_empty RubyRef::Compare.diff('s', { 'x' => 1 }, { 'x' => 1.0 }) # 1 and 1.0 are different JSON
  end

  def test_live_posthog_ruby_matches_fixtures
    rubylib = [ENV['POSTHOG_RUBY_LIB'], ENV['RUBYLIB']].compact.reject(&:empty?).join(File::PATH_SEPARATOR)
    env = { 'RUBYLIB' => rubylib.empty? ? nil : rubylib }
    _, _, st = Open3.capture3(env, RbConfig.ruby, '-e', 'begin; gem "posthog-ruby"; rescue LoadError; end; require "posthog"')
    skip('posthog-ruby cannot be loaded (gem, RUBYLIB or POSTHOG_RUBY_LIB): live recording skipped') unless st.success?

    Dir.mktmpdir('ruby-ref-live') do |dir|
      out, err, st = Open3.capture3(env.merge('LIBPOSTHOG_BUILD_DIR' => IngestServer.build_dir), RbConfig.ruby,
                                    File.join(IngestServer::REPO, 'tools', 'record_ruby_reference.rb'),
                                    '--out', dir)
      assert st.success?, "recorder failed:\n#{out}\n#{err}"
      (RubyRef::Scenarios.names + ['rails_app']).each do |n|
        live = JSON.parse(File.read(File.join(dir, "#{n}.json")))
        d = RubyRef::Compare.diff(n, fixture(n), live)
        assert_empty d, "posthog-ruby now sends something else than the fixture #{n}.json " \
                        "(record again):\n#{d.join("\n")}"
      end
    end
  end
end
