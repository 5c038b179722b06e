# frozen_string_literal: true

require 'json'
require 'logger'
require 'stringio'
require 'time'
require 'date'
require_relative 'raising'

# The scripts run with posthog-ruby (tools/record_ruby_reference.rb writes
# what reached the local ingestion server as the fixtures in
# ../fixtures/posthog-ruby-3.23.2/) and with LibPostHog (test_reference.rb
# compares what reaches the server with those fixtures). The same code runs
# in both: only the client class and the way to set the logger differ (an
# Sdk). Each scenario gives one result Hash:
#
#   "calls"          [{ "call", "returned" | "raised", "log" }] in order:
#                    what each call returned (as JSON), or the class and
#                    message of what it raised, and the lines logged at WARN
#                    or above meanwhile ([severity, message], prefix removed)
#   "events"         what the server received, in order, normalised
#   "flags_requests" the bodies of the /flags requests (flag scenarios)
#
# Normalised (Normalize): generated uuids, timestamps and distinct_ids,
# $lib_version, the token and the paths that differ per machine become
# placeholders, so two runs on any machine compare equal.
module RubyRef
  VERSION = '3.23.2' # the posthog-ruby version the fixtures were recorded with
  API_KEY = 'phc_reference'
  SECRET = 'phs_reference_secret'
  FIXTURES = File.expand_path("../fixtures/posthog-ruby-#{VERSION}", __dir__)

  # client_class: PostHog::Client or LibPostHog::Client; logger_setter:
  # ->(logger) that makes the SDK log there.
  Sdk = Struct.new(:name, :client_class, :logger_setter)

  FIXED_UUID = '0190a0b1-0000-7000-8000-0000000000aa'
  FIXED_TIME = Time.utc(2024, 5, 1, 10, 0, Rational(30_123, 1000))

  FLAGS_V2 = {
    flags: {
      beta: { key: 'beta', enabled: true, variant: nil,
              reason: { code: 'condition_match', description: 'Matched condition set 1' },
              metadata: { id: 5, version: 3, payload: JSON.generate({ color: 'blue' }) } },
      exp: { key: 'exp', enabled: true, variant: 'test',
             reason: { code: 'condition_match', description: 'Matched condition set 2' },
             metadata: { id: 6, version: 1, payload: JSON.generate('plain text') } },
      off: { key: 'off', enabled: false, variant: nil,
             reason: { code: 'no_condition_match', description: 'No matching condition set' },
             metadata: { id: 7, version: 1, payload: nil } }
    },
    errorsWhileComputingFlags: false,
    requestId: 'req-ref-1'
  }.freeze

  DEFINITIONS = {
    flags: [
      { id: 11, key: 'pro-only', active: true,
        filters: { groups: [{ properties: [{ key: 'plan', value: 'pro', operator: 'exact', type: 'person' }],
                              rollout_percentage: 100 }],
                   payloads: { 'true' => JSON.generate({ tier: 2 }) } } },
      { id: 12, key: 'half', active: true,
        filters: { groups: [{ properties: [], rollout_percentage: 50 }] } },
      { id: 13, key: 'multi', active: true,
        filters: { groups: [{ properties: [], rollout_percentage: 100 }],
                   multivariate: { variants: [{ key: 'control', rollout_percentage: 50 },
                                              { key: 'test', rollout_percentage: 50 }] } } }
    ],
    group_type_mapping: {},
    cohorts: {}
  }.freeze

  # One scenario's run: its clients, its log, its calls.
  class Run
    attr_reader :calls

    def initialize(sdk, server)
      @sdk = sdk
      @server = server
      @log = StringIO.new
      logger = Logger.new(@log)
      logger.level = Logger::WARN
      logger.formatter = proc { |sev, _t, _p, msg| "#{sev}\t#{msg.to_s.gsub("\n", ' ')}\n" }
      sdk.logger_setter.call(logger)
      @clients = []
      @calls = []
    end

    def client(**opts)
      c = @sdk.client_class.new({ api_key: API_KEY, host: @server.url }.merge(opts))
      @clients << c
      c
    end

    # Records what the block returns (or raises) and what was logged
    # meanwhile.
    def call(name)
      mark = @log.string.length
      rec = { 'call' => name }
      begin
        rec['returned'] = Normalize.value(yield)
      rescue StandardError => e
        rec['raised'] = { 'class' => e.class.name, 'message' => e.message }
      end
      # what the call logs from another thread (libposthog reports drops
      # from its reporter thread) is logged by the time flush returns
      @clients.each(&:flush)
      rec['log'] = log_since(mark)
      @calls << rec
      rec
    end

    def log_since(mark)
      @log.string[mark..].to_s.lines.map do |l|
        sev, msg = l.chomp.split("\t", 2)
        [sev, Normalize.log_message(msg.to_s)]
      end
    end

    def finish
      @clients.each do |c|
        c.flush
        c.shutdown
      end
    end
  end

  module Normalize
    module_function

    UUID = /\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\z/i.freeze
    TS = /\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)\z/.freeze
    FIXED = [FIXED_UUID, Raising.name].freeze

    def value(v)
      case v
      when Hash then v.each_with_object({}) { |(k, x), h| h[k.to_s] = value(x) }
      when Array then v.map { |x| value(x) }
      when String, Integer, Float, true, false, nil then v
      when Symbol then v.to_s
      else
        if v.respond_to?(:to_h) && !v.is_a?(Numeric)
          { 'class' => v.class.name.sub(/\A(Lib)?PostHog::/, ''), 'value' => value(v.to_h) }
        else
          v.to_s
        end
      end
    end

    def log_message(msg)
      msg.sub(/\A\[(posthog-ruby|libposthog)\]\s*/, '')
    end

    # What the server received for one event.
    def event(ev, known_ids)
      ev = JSON.parse(JSON.generate(ev))
      ev['uuid'] = '<uuid>' if ev['uuid'].is_a?(String) && !FIXED.include?(ev['uuid'])
      ev['timestamp'] = '<now>' if recent?(ev['timestamp'])
      if ev['distinct_id'].is_a?(String) && UUID.match?(ev['distinct_id'])
        ev['distinct_id'] = known_ids[ev['distinct_id']] ||= "<generated-id-#{known_ids.size + 1}>"
      end
      props = ev['properties']
      if props.is_a?(Hash)
        props['$lib_version'] = '<lib_version>' if props.key?('$lib_version')
        props['$exception_list']&.each { |x| exception(x) }
      end
      paths(ev)
    end

    # A timestamp the SDK took from the clock (the scripts give only fixed
    # ones, long past).
    def recent?(s)
      s.is_a?(String) && (Time.iso8601(s) - Time.now).abs < 3600
    rescue ArgumentError
      false
    end

    def exception(x)
      frames = x.dig('stacktrace', 'frames') || []
      frames.each do |f|
        # one runner's frames differ from the other's; the scenario's own
        # (raising.rb) are compared whole
        f['abs_path'] = "<ref>/#{File.basename(f['abs_path'])}" if f['abs_path']&.end_with?('/raising.rb')
      end
    end

    V1_OPTIONS = { 'process_person_profile' => '$process_person_profile', 'cookieless_mode' => '$cookieless_mode',
                   'disable_skew_correction' => '$ignore_sent_at', 'product_tour_id' => '$product_tour_id' }.freeze

    # A capture v1 event (it has "options") as its capture v0 form, the
    # form posthog-ruby sends, following docs/capture-api.md: the options
    # back as properties, session_id/window_id as $session_id/$window_id,
    # $set/$set_once at the top, $lib/$lib_version from the request's
    # PostHog-Sdk-Info (sdk: "name/version"). A v0 event is left as it is.
    def v1_as_v0(ev, sdk)
      return ev unless ev.is_a?(Hash) && ev.key?('options')

      ev = ev.dup
      props = (ev['properties'] || {}).dup
      opts = ev.delete('options') || {}
      V1_OPTIONS.each { |k, p| props[p] = opts[k] if opts.key?(k) }
      %w[session_id window_id].each { |k| props["$#{k}"] = ev.delete(k) if ev.key?(k) }
      %w[$set $set_once].each { |k| ev[k] = props.delete(k) if props.key?(k) }
      if sdk
        name, version = sdk.split('/', 2)
        props['$lib'] ||= name
        props['$lib_version'] ||= version
      end
      ev['properties'] = props
      ev
    end

    # from replaced by to in every String of a value.
    def replace(v, from, to)
      case v
      when Hash then v.transform_values { |x| replace(x, from, to) }
      when Array then v.map { |x| replace(x, from, to) }
      when String then v.gsub(from, to)
      else v
      end
    end

    # Machine-specific paths anywhere in a value.
    def paths(v)
      case v
      when Hash then v.transform_values { |x| paths(x) }
      when Array then v.map { |x| paths(x) }
      when String
        s = v.gsub(__dir__, '<ref>')
        s = s.gsub(File.expand_path('../../../..', __dir__), '<repo>')
        s.gsub(Dir.home, '<home>')
      else v
      end
    end

    # A /flags request body.
    def flags_request(body)
      b = JSON.parse(JSON.generate(body))
      b['token'] = '<token>' if b.key?('token')
      b['api_key'] = '<token>' if b.key?('api_key')
      b
    end
  end

  # The scripts. Each takes a Run; its client(...) is the SDK's client.
  module Scenarios
    module_function

    def names
      %w[capture identify alias group_identify before_send personless exceptions flags_remote flags_local errors]
    end

    def capture(r)
      c = r.client
      props = { 'string' => 'text', 'int' => 42, 'big' => 2**62, 'neg' => -7, 'float' => 3.25, 'true' => true,
                'false' => false, 'nil' => nil, 'array' => [1, 'two', 3.0, nil, { 'k' => 'v' }],
                'hash' => { 'nested' => { 'deep' => [true] } }, sym_key: :sym_value, 'unicode' => "h\u00e9llo \u2603",
                'empty' => '', 'time' => Time.utc(2023, 1, 2, 3, 4, 5), 'date' => Date.new(2023, 1, 2) }
      r.call('capture all types') { c.capture(distinct_id: 'user-1', event: 'typed', properties: props) }
      r.call('capture with groups') do
        c.capture(distinct_id: 'user-1', event: 'grouped', groups: { 'company' => 'acme', 'team' => 'core' },
                  properties: { 'a' => 1 })
      end
      r.call('capture timestamp Time') do
        c.capture(distinct_id: 'user-1', event: 'timed', timestamp: FIXED_TIME, uuid: FIXED_UUID)
      end
      r.call('capture timestamp Time with offset') do
        c.capture(distinct_id: 'user-1', event: 'timed_offset', timestamp: FIXED_TIME.getlocal('+02:00'))
      end
      r.call('capture message_id') { c.capture(distinct_id: 'user-1', event: 'msgid', message_id: FIXED_UUID) }
      r.call('capture symbol event and id') { c.capture(distinct_id: :user_sym, event: :sym_event) }
      r.call('capture string keys') { c.capture('distinct_id' => 'user-2', 'event' => 'string_keys') }
    end

    def identify(r)
      c = r.client
      r.call('identify') do
        c.identify(distinct_id: 'user-1', properties: { email: 'a@example.com', 'plan' => 'pro', age: 33 })
      end
      r.call('identify no properties') { c.identify(distinct_id: 'user-2') }
      r.call('identify timestamp') { c.identify(distinct_id: 'user-3', properties: { a: 1 }, timestamp: FIXED_TIME) }
    end

    def alias(r)
      c = r.client
      r.call('alias') { c.alias(distinct_id: 'user-1', alias: 'anon-42') }
    end

    def group_identify(r)
      c = r.client
      r.call('group_identify') do
        c.group_identify(group_type: 'company', group_key: 'acme', properties: { name: 'Acme', 'size' => 10 })
      end
      r.call('group_identify with distinct_id') do
        c.group_identify(group_type: 'team', group_key: 't1', distinct_id: 'user-1', properties: {})
      end
    end

    def before_send(r)
      seen = []
      filter = lambda do |ev|
        seen << ev[:event]
        case ev[:event]
        when 'drop_me' then nil
        when 'raise_me' then raise 'filter failed'
        when 'identify_me', '$identify'
          ev[:properties].delete(:email)
          ev[:'$set']&.delete(:email)
          ev
        else
          ev[:properties].delete(:email)
          ev[:properties]['added'] = 'by filter'
          ev[:event] = "#{ev[:event]}_renamed" if ev[:event] == 'rename_me'
          ev
        end
      end
      c = r.client(before_send: filter)
      r.call('kept, email stripped') do
        c.capture(distinct_id: 'u', event: 'signed_up', properties: { email: 'a@b.c', plan: 'pro' })
      end
      r.call('renamed') { c.capture(distinct_id: 'u', event: 'rename_me') }
      r.call('dropped (nil)') { c.capture(distinct_id: 'u', event: 'drop_me') }
      r.call('filter raises') { c.capture(distinct_id: 'u', event: 'raise_me') }
      r.call('identify stripped') { c.identify(distinct_id: 'u', properties: { email: 'a@b.c', name: 'A' }) }
      r.call('filter saw') { seen.dup }
    end

    def personless(r)
      c = r.client
      r.call('capture without distinct_id') { c.capture(event: 'anonymous', properties: { 'a' => 1 }) }
      r.call('capture without distinct_id, caller sets $process_person_profile') do
        c.capture(event: 'anonymous_person', properties: { '$process_person_profile' => true })
      end
    end

    def exceptions(r)
      c = r.client
      chain = Raising.chained
      deep = Raising.deep
      root = File.expand_path(__dir__)
      # the project root is the working directory: the same for both runs
      Dir.chdir(root) do
        r.call('cause chain') { c.capture_exception(chain, 'user-1', { 'order' => 7 }) }
        r.call('deeper backtrace') { c.capture_exception(deep, 'user-1') }
        r.call('never raised') { c.capture_exception(Raising::PaymentError.new('never raised'), 'user-1') }
        r.call('a String') { c.capture_exception('a message only', 'user-1') }
        r.call('mechanism') do
          c.capture_exception(chain, 'user-1', {}, mechanism: { 'type' => 'rack', 'handled' => false })
        end
        r.call('without distinct_id') { c.capture_exception(chain) }
        r.call('not an exception') { c.capture_exception(42, 'user-1') }
      end
    end

    def flags_remote(r)
      r.server.post('/_control/flags', { default: { status: 200, body: FLAGS_V2 } })
      c = r.client
      r.call('get_feature_flag beta') { c.get_feature_flag('beta', 'user-1') }
      r.call('get_feature_flag beta again') { c.get_feature_flag('beta', 'user-1') }
      r.call('get_feature_flag exp') { c.get_feature_flag('exp', 'user-1', groups: { 'company' => 'acme' }) }
      r.call('get_feature_flag missing') { c.get_feature_flag('missing', 'user-1') }
      r.call('is_feature_enabled off') { c.is_feature_enabled('off', 'user-1') }
      r.call('is_feature_enabled exp') { c.is_feature_enabled('exp', 'user-2') }
      r.call('without events') { c.get_feature_flag('beta', 'user-3', send_feature_flag_events: false) }
      r.call('get_all_flags') { c.get_all_flags('user-1') }
      r.call('get_feature_flag_payload beta') { c.get_feature_flag_payload('beta', 'user-1') }
      r.call('get_feature_flag_payload exp') { c.get_feature_flag_payload('exp', 'user-1') }
      r.call('get_all_flags_and_payloads') { c.get_all_flags_and_payloads('user-1') }
      r.call('get_feature_flag_result exp') do
        res = c.get_feature_flag_result('exp', 'user-5')
        res && [res.key, res.enabled?, res.variant, res.payload, res.value]
      end
      r.call('evaluate_flags snapshot') do
        snap = c.evaluate_flags('user-6')
        out = [snap.keys.sort, snap.enabled?('beta'), snap.get_flag('exp'), snap.get_flag('missing'),
               snap.get_flag_payload('beta'), snap.get_flag_payload('exp')]
        c.capture(distinct_id: 'user-6', event: 'with_flags', flags: snap)
        out
      end
      r.call('person_properties') do
        c.get_feature_flag('beta', 'user-4', person_properties: { 'plan' => 'pro' },
                                             group_properties: { 'company' => { 'size' => 5 } },
                                             groups: { 'company' => 'acme' })
      end
    end

    def flags_local(r)
      r.server.post('/_control/flags/definitions', { body: DEFINITIONS, secret_key: SECRET })
      r.server.post('/_control/flags', { default: { status: 500, body: { error: 'not expected' } } })
      c = r.client(personal_api_key: SECRET)
      c.reload_feature_flags if c.respond_to?(:reload_feature_flags)
      r.call('pro-only, plan pro') { c.get_feature_flag('pro-only', 'user-1', person_properties: { 'plan' => 'pro' }) }
      r.call('pro-only, plan free') do
        c.get_feature_flag('pro-only', 'user-1', person_properties: { 'plan' => 'free' })
      end
      r.call('pro-only payload') do
        c.get_feature_flag_payload('pro-only', 'user-1', person_properties: { 'plan' => 'pro' })
      end
      r.call('half, ten users') do
        (1..10).map { |i| c.get_feature_flag('half', "user-#{i}", only_evaluate_locally: true) }
      end
      r.call('multi') { %w[a b c d].map { |u| c.get_feature_flag('multi', u, only_evaluate_locally: true) } }
      r.call('get_all_flags local') do
        c.get_all_flags('user-1', person_properties: { 'plan' => 'pro' }, only_evaluate_locally: true)
      end
    end

    def errors(r)
      c = r.client
      r.call('capture without event') { c.capture(distinct_id: 'u') }
      r.call('capture properties not a Hash') { c.capture(distinct_id: 'u', event: 'e', properties: 'x') }
      r.call('capture groups not a Hash') { c.capture(distinct_id: 'u', event: 'e', groups: 'x') }
      r.call('capture timestamp number (seconds)') do
        c.capture(distinct_id: 'u', event: 'numeric_ts', timestamp: FIXED_TIME.to_i)
      end
      r.call('capture timestamp number (milliseconds)') do
        c.capture(distinct_id: 'u', event: 'millis_ts', timestamp: FIXED_TIME.to_i * 1000)
      end
      r.call('capture timestamp 0') { c.capture(distinct_id: 'u', event: 'zero_ts', timestamp: 0) }
      r.call('capture timestamp String') do
        c.capture(distinct_id: 'u', event: 'string_ts', timestamp: '2024-05-01T10:00:30.123Z')
      end
      r.call('capture invalid uuid') { c.capture(distinct_id: 'u', event: 'bad_uuid', uuid: 'not-a-uuid') }
      r.call('identify without distinct_id') { c.identify(properties: { a: 1 }) }
      r.call('identify properties not a Hash') { c.identify(distinct_id: 'u', properties: [1]) }
      r.call('alias without alias') { c.alias(distinct_id: 'u') }
      r.call('alias without distinct_id') { c.alias(alias: 'v') }
      r.call('group_identify without group_key') { c.group_identify(group_type: 'company') }
      r.call('capture after shutdown') do
        c.shutdown
        c.capture(distinct_id: 'u', event: 'after_shutdown')
      end
      r.call('client without api_key') do
        d = r.client(api_key: '')
        [d.capture(distinct_id: 'u', event: 'keyless'), d.get_feature_flag('beta', 'u')]
      end
    end
  end

  # Runs one scenario against a clean server; the result Hash.
  def self.run(name, sdk, server)
    server.reset
    r = Run.new(sdk, server)
    r.define_singleton_method(:server) { server }
    Scenarios.public_send(name, r)
    r.finish
    known = {}
    out = { 'scenario' => name, 'calls' => r.calls,
            'events' => server.events.map { |e| Normalize.event(e, known) } }
    if name.start_with?('flags')
      out['flags_requests'] = server.get('/_control/flags/requests')['requests'].map do |q|
        Normalize.flags_request(q['body'])
      end
    end
    Normalize.paths(out)
  end
end
