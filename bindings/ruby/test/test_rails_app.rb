# frozen_string_literal: true

require_relative 'test_helper'
require_relative 'reference/rails_app'
require_relative 'reference/compare'

# Issue 12: a Rails-style app written for posthog-ruby (rails_app/:
# config/initializers/posthog.rb with `require 'posthog'` and
# PostHog::Client.new(api_key:, host:, on_error:, before_send:, ...), a
# controller, a job on a worker thread; no Rails gem) boots and delivers
# with libposthog when only that `require` is changed, with the binding's
# defaults (capture v1). What arrives is compared field by field with what
# the same app sent with posthog-ruby 3.23.2
# (fixtures/posthog-ruby-3.23.2/rails_app.json), differences only as
# allowed in reference/allowed_differences.json.
class TestRailsApp < LibPostHogTest
  # The app's run with libposthog, once per suite (test_reference.rb's
  # allow-list check uses it too).
  def self.run_app
    @run_app ||= begin
      lib = File.dirname($LOADED_FEATURES.find { |f| f.end_with?('/libposthog.rb') })
      # the C library this process loaded, also when found through a
      # relative LIBPOSTHOG_PATH (the app runs in its own directory)
      path = LibPostHog::Native.library_path.to_s
      env = path.include?('/') ? { 'LIBPOSTHOG_PATH' => File.expand_path(path) } : {}
      RubyRef::RailsApp.run(IngestServer, require_line: "require 'libposthog/compat'", ruby_args: ['-I', lib],
                                          env: env)
    end
  end

  def run_app
    self.class.run_app
  end

  def test_starts_and_delivers_with_only_the_require_changed
    ours = run_app
    theirs = JSON.parse(File.read(File.join(RubyRef::FIXTURES, 'rails_app.json')))
    assert_equal theirs['stdout'], ours['stdout']
    assert_equal ['POST /orders amount=30: created', 'POST /orders amount=x: unprocessable_entity',
                  'on_error calls: 0'], ours['stdout']
    assert_equal theirs['events'].map { |e| e['event'] }.sort, ours['events'].map { |e| e['event'] }.sort
    bad = RubyRef::Compare.diff('rails_app', theirs, ours).reject { |d| RubyRef::Compare.allowing(d) }
    assert_empty bad, "differences from posthog-ruby not in reference/allowed_differences.json:\n#{bad.join("\n")}"
  end

  def test_what_the_app_sent
    by = run_app['events'].to_h { |e| [e['event'], e] }
    order = by.fetch('order created')
    assert_equal 'user-42', order['distinct_id']
    refute order['properties'].key?('password'), 'the initializer\'s before_send strips it'
    assert_equal({ 'company' => 'acme' }, order['properties']['$groups'])
    assert_equal 'one-page', order['properties']['checkout']
    assert_equal true, order['properties']['$is_server']
    assert_equal({ 'email' => 'ada@example.com', 'plan' => 'pro' }, by.fetch('$identify')['$set'])
    assert_equal 'report generated', by.fetch('report generated')['event'] # from the job's thread
    ex = by.fetch('$exception')['properties']['$exception_list']
    assert_equal [['ArgumentError', 'invalid value for Integer(): "x"']], ex.map { |x| [x['type'], x['value']] }
    frames = ex[0]['stacktrace']['frames'] # innermost last: Kernel#Integer, called from create
    assert_equal %w[Integer create], frames.last(2).map { |f| f['function'] }.reverse
    top = frames[-2]
    assert_equal ['app/controllers/orders_controller.rb', '<app>/app/controllers/orders_controller.rb', true],
                 top.values_at('filename', 'abs_path', 'in_app')
    assert_equal '    amount = Integer(params[:amount])', top['context_line']
    assert_equal 'bin/serve', frames.first['filename']
  end
end
