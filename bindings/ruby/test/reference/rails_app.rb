# frozen_string_literal: true

require 'fileutils'
require 'open3'
require 'rbconfig'
require 'tmpdir'
require_relative 'scenarios'

module RubyRef
  # The Rails-style app in ../rails_app (config/initializers/posthog.rb
  # written for posthog-ruby, a controller, a job on a worker thread), run
  # in a process of its own against the ingestion server: what its stdout
  # said and what the server received, normalised like the scenarios (its
  # directory becomes <app>). The recorder runs it with posthog-ruby; the
  # binding's test with the initializer's `require 'posthog'` changed to
  # `require 'libposthog/compat'` and nothing else.
  module RailsApp
    DIR = File.expand_path('../rails_app', __dir__)
    REQUIRE = "require 'posthog'\n"

    FLAGS = {
      flags: {
        'checkout-flow': { key: 'checkout-flow', enabled: true, variant: 'one-page',
                           reason: { code: 'condition_match', description: 'Matched condition set 1' },
                           metadata: { id: 21, version: 2, payload: nil } }
      },
      errorsWhileComputingFlags: false,
      requestId: 'req-rails-1'
    }.freeze

    module_function

    # require_line: what replaces the initializer's `require 'posthog'`
    # (nil: nothing). ruby_args: interpreter arguments (-I...).
    def run(server, require_line: nil, ruby_args: [], env: {})
      server.reset
      server.post('/_control/flags', { default: { status: 200, body: FLAGS } })
      Dir.mktmpdir('rails-app') do |tmp|
        app = File.join(File.realpath(tmp), 'app')
        FileUtils.cp_r(DIR, app)
        change_require(app, require_line) if require_line
        out, err, st = Open3.capture3({ 'POSTHOG_API_KEY' => API_KEY, 'POSTHOG_HOST' => server.url }.merge(env),
                                      RbConfig.ruby, *ruby_args, File.join(app, 'bin', 'serve'))
        raise "the app failed (#{st.inspect}):\n#{out}\n#{err}" unless st.success?

        known = {}
        sdk = sdk_info(server.get('/_control/requests')['requests'])
        result = { 'scenario' => 'rails_app', 'stdout' => out.lines.map(&:chomp),
                   'events' => server.events.map { |e| Normalize.event(Normalize.v1_as_v0(e, sdk), known) } }
        Normalize.paths(Normalize.replace(result, app, '<app>'))
      end
    end

    # "name/version" of the capture v1 requests' PostHog-Sdk-Info header
    # (where v1 carries $lib and $lib_version), or nil.
    def sdk_info(requests)
      requests.each do |r|
        h = r['headers'] || {}
        v = h.find { |k, _| k.casecmp?('posthog-sdk-info') }&.last
        return v if v
      end
      nil
    end

    def change_require(app, line)
      init = File.join(app, 'config', 'initializers', 'posthog.rb')
      text = File.read(init)
      raise "#{init} has no #{REQUIRE.inspect}" unless text.include?(REQUIRE)

      File.write(init, text.sub(REQUIRE, "#{line}\n"))
    end
  end
end
