#!/usr/bin/env ruby
# frozen_string_literal: true

# Records what posthog-ruby sends for the reference scenarios
# (bindings/ruby/test/reference/scenarios.rb, and the Rails-style app in
# bindings/ruby/test/rails_app run as a process) to the project's local
# ingestion server, normalised, as JSON fixtures; the Ruby binding's
# test_reference.rb compares LibPostHog's output with them.
#
#   RUBYLIB=/path/to/posthog-ruby/lib ruby tools/record_ruby_reference.rb \
#     [--out DIR] [--build-dir DIR] [--source TEXT] [SCENARIO...]
#
# posthog-ruby comes from RUBYLIB (a checkout's lib/) or the installed gem;
# its runtime dependency concurrent-ruby must be loadable (Debian:
# ruby-concurrent). --build-dir (default $LIBPOSTHOG_BUILD_DIR, else
# build/) holds tools/posthog-ingest-server. --out defaults to the fixtures
# directory, bindings/ruby/test/fixtures/posthog-ruby-<version>/. --source
# names what was recorded from (e.g. "PostHog/posthog-ruby tag
# posthog-ruby-v3.23.2, commit ..."), kept in meta.json. Without scenario
# names, all of them. Exit status: 0 recorded, 2 usage or posthog-ruby not
# loadable, 1 anything else.
require 'json'
require 'net/http'
require 'optparse'
require 'rbconfig'
require 'tmpdir'
require 'timeout'
require 'fileutils'

REPO = File.expand_path('..', __dir__)
require File.join(REPO, 'bindings/ruby/test/reference/scenarios')
require File.join(REPO, 'bindings/ruby/test/reference/rails_app')

opts = { out: RubyRef::FIXTURES, build: ENV['LIBPOSTHOG_BUILD_DIR'] || 'build', source: nil }
OptionParser.new do |o|
  o.banner = 'usage: RUBYLIB=posthog-ruby/lib ruby tools/record_ruby_reference.rb [options] [SCENARIO...]'
  o.on('--out DIR', 'where the JSON files go') { |v| opts[:out] = v }
  o.on('--build-dir DIR', 'libposthog build tree (tools/posthog-ingest-server)') { |v| opts[:build] = v }
  o.on('--source TEXT', 'what posthog-ruby was recorded from (kept in meta.json)') { |v| opts[:source] = v }
end.parse!
all = RubyRef::Scenarios.names + ['rails_app']
names = ARGV.empty? ? all : ARGV
unknown = names - all
unless unknown.empty?
  warn "record_ruby_reference: unknown scenario(s) #{unknown.join(', ')}; known: #{all.join(', ')}"
  exit 2
end

begin
  begin
    gem 'posthog-ruby'
  rescue LoadError
    nil # not installed as a gem: RUBYLIB
  end
  require 'posthog'
rescue LoadError => e
  warn "record_ruby_reference: posthog-ruby cannot be loaded (#{e.message}); " \
       'set RUBYLIB to its lib/ or install the gem (it needs concurrent-ruby)'
  exit 2
end
if defined?(LibPostHog)
  warn 'record_ruby_reference: LibPostHog is loaded: this records posthog-ruby only'
  exit 2
end
unless PostHog::VERSION == RubyRef::VERSION
  warn "record_ruby_reference: posthog-ruby #{PostHog::VERSION} loaded, the fixtures are for #{RubyRef::VERSION}"
  exit 2
end

# The ingestion server, as the test suites start it.
class RefServer
  attr_reader :url

  def initialize(build)
    bin = File.join(File.expand_path(build, REPO), 'tools', 'posthog-ingest-server')
    raise "ingest server not found: #{bin} (--build-dir)" unless File.executable?(bin)

    @dir = Dir.mktmpdir('ruby-ref')
    port_file = File.join(@dir, 'port')
    @pid = Process.spawn(bin, '--port-file', port_file, '--quiet', out: File::NULL, err: $stderr)
    Timeout.timeout(10) { sleep 0.02 until File.exist?(port_file) && !File.read(port_file).strip.empty? }
    @url = "http://127.0.0.1:#{Integer(File.read(port_file).strip)}"
  end

  def stop
    Process.kill('TERM', @pid)
    Process.wait(@pid)
    FileUtils.rm_rf(@dir)
  end

  def get(path)
    JSON.parse(Net::HTTP.get(URI("#{@url}#{path}")))
  end

  def post(path, body = {})
    res = Net::HTTP.post(URI("#{@url}#{path}"), JSON.generate(body), 'Content-Type' => 'application/json')
    raise "#{path}: #{res.code} #{res.body}" unless res.code.start_with?('2')

    res.body
  end

  def reset
    post('/_control/reset')
    post('/_control/faults', { script: [] })
  end

  def events
    get('/_control/events')['events']
  end
end

sdk = RubyRef::Sdk.new('posthog-ruby', PostHog::Client, ->(l) { PostHog::Logging.logger = l })
server = RefServer.new(opts[:build])
begin
  FileUtils.mkdir_p(opts[:out])
  names.each do |name|
    # rails_app: the app in a process of its own, posthog-ruby from this RUBYLIB
    result = name == 'rails_app' ? RubyRef::RailsApp.run(server) : RubyRef.run(name, sdk, server)
    File.write(File.join(opts[:out], "#{name}.json"), "#{JSON.pretty_generate(result)}\n")
    puts "record_ruby_reference: #{name}: #{(result['calls'] || result['stdout']).size} calls, " \
         "#{result['events'].size} events"
  end
  meta = { 'sdk' => 'posthog-ruby', 'version' => PostHog::VERSION, 'source' => opts[:source],
           'ruby' => RUBY_VERSION, 'scenarios' => all }
  File.write(File.join(opts[:out], 'meta.json'), "#{JSON.pretty_generate(meta)}\n") if names == all
ensure
  server.stop
end
