# frozen_string_literal: true

# Test support: starts the project's ingest server (posthog-ingest-server
# from LIBPOSTHOG_BUILD_DIR, default <repo>/build) once for the run and talks
# to its /_control API.
require 'minitest/autorun'
require 'json'
require 'net/http'
require 'stringio'
require 'tmpdir'
require 'timeout'
require 'libposthog'

module IngestServer
  REPO = File.expand_path('../../..', __dir__)

  class << self
    attr_reader :port

    def build_dir
      d = ENV['LIBPOSTHOG_BUILD_DIR'] || 'build'
      File.expand_path(d, REPO)
    end

    def start
      return if @pid

      bin = File.join(build_dir, 'tools', 'posthog-ingest-server')
      raise "ingest server not found: #{bin} (set LIBPOSTHOG_BUILD_DIR)" unless File.executable?(bin)

      @dir = Dir.mktmpdir('libposthog-rb')
      port_file = File.join(@dir, 'port')
      @pid = Process.spawn(bin, '--port-file', port_file, '--quiet', out: File::NULL, err: $stderr)
      Timeout.timeout(10) { sleep 0.02 until File.exist?(port_file) && !File.read(port_file).strip.empty? }
      @port = Integer(File.read(port_file).strip)
      @owner = Process.pid
      Minitest.after_run { stop }
    end

    def stop
      return unless @pid && @owner == Process.pid

      Process.kill('TERM', @pid)
      Process.wait(@pid)
      @pid = nil
    rescue StandardError
      nil
    end

    def url
      "http://127.0.0.1:#{port}"
    end

    def get(path)
      JSON.parse(Net::HTTP.get(URI("#{url}#{path}")))
    end

    def post(path, body = {})
      res = Net::HTTP.post(URI("#{url}#{path}"), JSON.generate(body), 'Content-Type' => 'application/json')
      raise "#{path}: #{res.code} #{res.body}" unless res.code.start_with?('2')

      res.body
    end

    def reset
      post('/_control/reset')
      post('/_control/faults', { script: [] })
    end

    def faults(script)
      post('/_control/faults', { script: script })
    end

    def events
      get('/_control/events')['events']
    end

    def requests
      get('/_control/requests')['requests']
    end

    def summary
      get('/_control/summary')
    end
  end
end

IngestServer.start

class LibPostHogTest < Minitest::Test
  UUID_RE = /\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\z/.freeze
  TS_RE = /\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/.freeze

  def setup
    IngestServer.reset
    @log = StringIO.new
    @logger = Logger.new(@log)
    @clients = []
  end

  def teardown
    @clients.each { |c| c.shutdown(timeout: 5) }
  end

  # The suites written for /batch/ pin capture v0 (the library's default is
  # v1; test_capture_options.rb covers v1 and the default).
  def client(**opts)
    opts = { capture_mode: 'v0' }.merge(opts) unless ENV.key?('POSTHOG_CAPTURE_MODE')
    c = LibPostHog::Client.new(api_key: 'phc_test', host: IngestServer.url, logger: @logger,
                               flush_interval_ms: 50, retry_backoff_ms: 10, **opts)
    @clients << c
    c
  end

  def events
    IngestServer.events
  end

  def wait_for(timeout = 10)
    deadline = Time.now + timeout
    until (v = yield)
      return v if Time.now > deadline

      sleep 0.02
    end
    v
  end

  def log_text
    @log.string
  end
end
