# frozen_string_literal: true

require 'tmpdir'
require 'fileutils'
require_relative 'test_helper'

# Every event method and the payload it produces on the wire.
class TestMethods < LibPostHogTest
  def test_capture_payload
    c = client
    at = Time.new(2024, 5, 1, 12, 30, 15.25r, '+02:00')
    assert c.capture(distinct_id: 'user-1', event: 'signed_up',
                     properties: { plan: 'pro', 'seats' => 3, ratio: 0.5, ok: true, none: nil,
                                   tags: %i[a b], nested: { 'deep' => { x: 1 } }, when: at },
                     timestamp: at, uuid: '0190F0F0-1234-7000-8000-ABCDEF012345')
    assert c.flush
    evs = events
    assert_equal 1, evs.size
    e = evs[0]
    assert_equal 'signed_up', e['event']
    assert_equal 'user-1', e['distinct_id']
    assert_equal '0190f0f0-1234-7000-8000-abcdef012345', e['uuid']
    assert_equal '2024-05-01T10:30:15.250Z', e['timestamp']
    p = e['properties']
    assert_equal 'pro', p['plan']
    assert_equal 3, p['seats']
    assert_equal 0.5, p['ratio']
    assert_equal true, p['ok']
    assert p.key?('none') && p['none'].nil?
    assert_equal %w[a b], p['tags']
    assert_equal({ 'deep' => { 'x' => 1 } }, p['nested'])
    assert_equal '2024-05-01T12:30:15.250+02:00', p['when'] # posthog-ruby's isoify_dates form
    assert_equal 'posthog-ruby', p['$lib']
    assert_equal LibPostHog::VERSION, p['$lib_version']

    req = IngestServer.requests.last
    assert_equal '/batch/', req['path']
    assert_equal 'phc_test', req['body']['api_key']
    assert_match(TS_RE, req['body']['sent_at'])
  end

  def test_capture_defaults_generated_uuid_and_timestamp
    c = client
    t0 = Time.now.utc
    assert c.capture(distinct_id: 'u', event: 'e')
    assert c.flush
    e = events.first
    assert_match UUID_RE, e['uuid']
    assert_equal '7', e['uuid'][14], 'a v7 uuid'
    assert_match TS_RE, e['timestamp']
    assert_in_delta t0.to_f, Time.iso8601(e['timestamp']).to_f, 5
    assert_equal({ '$lib' => 'posthog-ruby', '$lib_version' => LibPostHog::VERSION, '$is_server' => true },
                 e['properties'])
  end

  # posthog-ruby's is_server option: $is_server unless is_server: false.
  def test_is_server_option
    assert client(is_server: false).capture(distinct_id: 'u', event: 'cli')
    assert client(is_server: true, super_properties: { '$is_server' => false }).capture(distinct_id: 'u', event: 'own')
    @clients.each(&:flush)
    by = events.to_h { |e| [e['event'], e['properties']] }
    refute by['cli'].key?('$is_server')
    assert_equal false, by['own']['$is_server'] # super_properties win over the SDK's
  end

  def test_distinct_id_stringified_and_timestamp_types
    c = client
    assert c.capture(distinct_id: 42, event: 'int_id', timestamp: DateTime.new(2023, 1, 2, 3, 4, 5))
    assert c.capture(distinct_id: :sym, event: 'sym_id', timestamp: Date.new(2023, 1, 2).to_time.utc)
    assert c.capture(distinct_id: 'x', event: 'str_ts', timestamp: '2023-01-02T03:04:05.678Z')
    assert c.flush
    by = events.to_h { |e| [e['event'], e] }
    assert_equal '42', by['int_id']['distinct_id']
    assert_equal '2023-01-02T03:04:05.000Z', by['int_id']['timestamp']
    assert_equal 'sym', by['sym_id']['distinct_id']
    assert_equal '2023-01-02T03:04:05.678Z', by['str_ts']['timestamp']
  end

  def test_capture_durable_is_on_disk_before_returning
    dir = Dir.mktmpdir('libposthog-rb-durable')
    c = client(storage_path: File.join(dir, 'spool'))
    assert c.capture_durable(distinct_id: 'u', event: 'purchase', properties: { amount: 9.5 })
    files = Dir.glob(File.join(dir, 'spool', '*.spool'))
    refute_empty files, 'the event is in a spool file when the call returns'
    assert_includes files.map { |f| File.binread(f) }.join, '"purchase"'
    assert c.flush
    ev = events.select { |e| e['event'] == 'purchase' }
    assert_equal 1, ev.size
    assert_equal 9.5, ev[0]['properties']['amount']
    assert_equal 0, c.stats[:spool_pending]
    # without storage_path it cannot be durable: false, logged, not raised
    refute client.capture_durable(distinct_id: 'u', event: 'purchase')
  ensure
    FileUtils.rm_rf(dir) if dir
  end

  def test_capture_groups
    c = client
    assert c.capture(distinct_id: 'u', event: 'e', groups: { company: 'acme', team: 7 })
    assert c.flush
    assert_equal({ 'company' => 'acme', 'team' => '7' }, events.first['properties']['$groups'])
  end

  def test_capture_set_and_set_once
    c = client
    assert c.capture(distinct_id: 'u', event: 'e', set: { name: 'A' }, set_once: { first: 'x' })
    assert c.flush
    e = events.first
    assert_equal({ 'name' => 'A' }, e['$set'])
    assert_equal({ 'first' => 'x' }, e['$set_once'])
  end

  def test_identify
    c = client
    assert c.identify(distinct_id: 'user-1', properties: { email: 'a@example.com', plan: 'pro' })
    assert c.flush
    e = events.first
    assert_equal '$identify', e['event']
    assert_equal 'user-1', e['distinct_id']
    assert_equal({ 'email' => 'a@example.com', 'plan' => 'pro' }, e['$set'])
    assert_equal 'a@example.com', e['properties']['email']
    assert_equal 'posthog-ruby', e['properties']['$lib']
  end

  def test_alias
    c = client
    assert c.alias(distinct_id: 'user-1', alias: 'anon-9')
    assert c.flush
    e = events.first
    assert_equal '$create_alias', e['event']
    assert_equal 'user-1', e['distinct_id']
    assert_equal 'user-1', e['properties']['distinct_id']
    assert_equal 'anon-9', e['properties']['alias']
  end

  def test_group_identify
    c = client
    assert c.group_identify(group_type: 'company', group_key: 'acme', properties: { name: 'Acme', size: 10 })
    assert c.group_identify(group_type: 'company', group_key: 42, properties: {}, distinct_id: 'user-1')
    assert c.flush
    a, b = events
    assert_equal '$groupidentify', a['event']
    assert_equal '$company_acme', a['distinct_id']
    assert_equal 'company', a['properties']['$group_type']
    assert_equal 'acme', a['properties']['$group_key']
    assert_equal({ 'name' => 'Acme', 'size' => 10 }, a['properties']['$group_set'])
    assert_equal 'user-1', b['distinct_id']
    assert_equal '42', b['properties']['$group_key']
  end

  def test_posthog_ruby_hash_argument_style
    c = client
    assert c.capture({ 'distinct_id' => 'u', 'event' => 'string_keys', 'properties' => { 'a' => 1 } })
    assert c.capture({ distinct_id: 'u', event: 'positional_hash' })
    assert c.identify({ distinct_id: 'u', properties: { x: 1 } })
    assert c.flush
    assert_equal %w[string_keys positional_hash $identify], events.map { |e| e['event'] }
  end

  def test_invalid_arguments_do_not_raise
    errors = Queue.new
    c = client(on_error: proc { |s, m| errors << [s, m] })
    refute c.capture(distinct_id: 'u', event: '')
    assert c.capture(distinct_id: nil, event: 'personless') # a generated id, as posthog-ruby
    refute c.capture(distinct_id: 'u', event: 'e', properties: 'not a hash')
    refute c.capture(distinct_id: 'u', event: 'e', timestamp: Object.new)
    refute c.alias(distinct_id: 'u', alias: nil)
    refute c.group_identify(group_type: nil, group_key: 'k')
    assert c.capture(distinct_id: 'u', event: 'bad_uuid', uuid: 'not-a-uuid')
    assert c.flush
    assert_equal %w[personless bad_uuid], events.map { |e| e['event'] }
    assert_match UUID_RE, events.first['distinct_id']
    assert_match UUID_RE, events.last['uuid']
    assert_match(/UUID is not valid: not-a-uuid/, log_text)
    assert_match(/properties must be a Hash/, log_text)
    got = Array.new(errors.size) { errors.pop }
    assert_equal 1, got.size, got.inspect # the one the C library dropped as invalid
    assert(got.all? { |s, _| s == -1 })
    assert_equal 1, c.stats[:dropped][:invalid]
  end

  def test_weird_values_are_serialised
    c = client
    bin = "caf\xC3\xA9".b
    bad = "bad \xFF byte".dup.force_encoding('UTF-8')
    assert c.capture(distinct_id: 'u', event: 'e',
                     properties: { bin: bin, bad: bad, nan: Float::NAN, inf: Float::INFINITY,
                                   big: 2**70, rat: 1.5r, obj: Object.new.tap { |o| def o.to_s = 'OBJ' },
                                   sym: :v, 1 => 'int key', date: Date.new(2024, 2, 3) })
    assert c.flush
    p = events.first['properties']
    assert_equal 'café', p['bin']
    assert_equal "bad \uFFFD byte", p['bad']
    assert_nil p['nan']
    assert_nil p['inf']
    assert_equal 2**70, p['big']
    assert_equal 1.5, p['rat']
    assert_equal 'OBJ', p['obj']
    assert_equal 'v', p['sym']
    assert_equal 'int key', p['1']
    assert_equal '2024-02-03', p['date']
  end

  def test_capture_exception
    c = client
    begin
      raise ArgumentError, 'boom'
    rescue ArgumentError => e
      assert c.capture_exception(e, 'user-1', { extra: 1 })
    end
    assert c.flush
    e = events.first
    assert_equal '$exception', e['event']
    assert_equal 'user-1', e['distinct_id']
    ex = e['properties']['$exception_list'].first
    assert_equal 'ArgumentError', ex['type']
    assert_equal 'boom', ex['value']
    refute_empty ex['stacktrace']['frames']
    assert_equal 1, e['properties']['extra']
  end

  # posthog-ruby 3.23.2: a flag the /flags answer lacks is false (nil only
  # when the flags could not be evaluated)
  def test_unknown_feature_flag_is_false
    c = client # the server's default /flags answer has no flags
    assert_equal false, c.get_feature_flag('f', 'u')
    assert_equal false, c.is_feature_enabled('f', 'u')
    assert_equal({}, c.get_all_flags('u'))
    assert_nil c.get_remote_config_payload('f')
    assert_match(/get_remote_config_payload is not supported/, log_text)
  end

  def test_stats
    c = client
    3.times { |i| c.capture(distinct_id: 'u', event: "e#{i}") }
    assert c.flush
    s = c.stats
    assert_equal 3, s[:captured]
    assert_equal 3, s[:sent]
    assert_equal 0, s[:dropped_total]
    assert_equal 0, s[:queue_depth]
  end

  def test_compat_constant
    require 'libposthog/compat'
    assert_same LibPostHog::Client, PostHog::Client
  end
end
