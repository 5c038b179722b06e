# frozen_string_literal: true

require_relative 'test_helper'

# Client options (capture_mode, compression, compress_request, disable_geoip,
# historical_migration) and per-event capture options (process_person_profile,
# cookieless_mode, disable_skew_correction, product_tour_id, no distinct_id),
# checked on what the ingest server received.
#
# The library's default is capture v1; the tests of v0 payloads pass
# capture_mode: 'v0'.
class TestCaptureOptions < LibPostHogTest
  OPTION_KEYS = %w[$process_person_profile $cookieless_mode $ignore_sent_at $product_tour_id].freeze

  def v0
    { capture_mode: 'v0' }
  end

  def by_name
    events.to_h { |e| [e['event'], e] }
  end

  def ok_requests
    IngestServer.requests.select { |r| r['status'] == 200 }
  end

  def test_capture_options_struct_layout
    skip('layout checked for LP64 only') unless FFI::Pointer.size == 8
    s = LibPostHog::Native::CaptureOptions
    assert_equal 72, s.size
    assert_equal [0, 8, 16, 24, 32, 40, 44, 48, 56, 64], s.members.map { |m| s.offset_of(m) }
    assert_equal [0, 1, 2, 1], [nil, true, false, 'x'].map { |v| LibPostHog::Native.tristate(v) }
  end

  def test_per_event_options_as_properties_in_v0
    c = client(**v0)
    assert c.capture(distinct_id: 'u', event: 'all', process_person_profile: false, cookieless_mode: true,
                     disable_skew_correction: true, product_tour_id: 'tour-1')
    assert c.capture(distinct_id: 'u', event: 'true flags', process_person_profile: true,
                     cookieless_mode: false, disable_skew_correction: false)
    assert c.capture(distinct_id: 'u', event: 'none')
    assert c.capture(distinct_id: 'u', event: 'properties win', process_person_profile: false,
                     product_tour_id: 'from-arg',
                     properties: { '$process_person_profile' => true, '$product_tour_id' => 'from-props' })
    assert c.flush
    assert_equal(['/batch/'], ok_requests.map { |r| r['path'] }.uniq)
    ev = by_name
    p = ev['all']['properties']
    assert_equal [false, true, true, 'tour-1'], OPTION_KEYS.map { |k| p[k] }
    p = ev['true flags']['properties']
    assert_equal [true, false, false], OPTION_KEYS.first(3).map { |k| p[k] }
    refute p.key?('$product_tour_id')
    assert_empty OPTION_KEYS & ev['none']['properties'].keys
    p = ev['properties win']['properties']
    assert_equal [true, 'from-props'], [p['$process_person_profile'], p['$product_tour_id']]
  end

  def test_per_event_options_durable
    Dir.mktmpdir('rb-spool') do |dir|
      c = client(storage_path: dir, **v0)
      assert c.capture_durable(distinct_id: 'u', event: 'durable', cookieless_mode: true, product_tour_id: 't')
      assert c.capture_durable(event: 'durable anon')
      assert c.flush
      ev = by_name
      assert_equal [true, 't'], ev['durable']['properties'].values_at('$cookieless_mode', '$product_tour_id')
      assert_match UUID_RE, ev['durable anon']['distinct_id']
      assert_equal false, ev['durable anon']['properties']['$process_person_profile']
      c.shutdown(timeout: 5)
    end
  end

  def test_capture_without_distinct_id_is_personless
    c = client(**v0)
    assert c.capture(event: 'no id')
    assert c.capture(event: 'empty id', distinct_id: '')
    assert c.capture(event: 'anon with profile', process_person_profile: true)
    assert c.capture(event: 'anon with prop', properties: { '$process_person_profile' => true })
    assert c.flush
    ev = events
    assert_equal ['no id', 'empty id', 'anon with profile', 'anon with prop'], ev.map { |e| e['event'] }
    dids = ev.map { |e| e['distinct_id'] }
    assert(dids.all? { |d| d.match?(UUID_RE) })
    assert_equal dids.uniq, dids
    assert_equal [false, false, true, true], ev.map { |e| e['properties']['$process_person_profile'] }
  end

  def test_default_distinct_id_option
    c = client(default_distinct_id: 'service-1', **v0)
    assert c.capture(event: 'no id')
    assert c.flush
    e, = events
    assert_equal 'service-1', e['distinct_id']
    refute e['properties'].key?('$process_person_profile')
  end

  def test_disable_geoip_client_option_and_per_call
    on = client(disable_geoip: true, **v0)
    assert on.capture(distinct_id: 'u', event: 'client off')
    assert on.capture(distinct_id: 'u', event: 'call enables', disable_geoip: false)
    off = client(**v0) # posthog-ruby sends no $geoip_disable by default
    assert off.capture(distinct_id: 'u', event: 'default')
    assert off.capture(distinct_id: 'u', event: 'call disables', disable_geoip: true)
    assert on.flush
    assert off.flush
    ev = by_name.transform_values { |e| e['properties'] }
    assert_equal true, ev['client off']['$geoip_disable']
    refute ev['call enables']['$geoip_disable']
    refute ev['default'].key?('$geoip_disable')
    assert_equal true, ev['call disables']['$geoip_disable']
  end

  def test_historical_migration_reaches_the_request
    c = client(historical_migration: true, **v0)
    assert c.capture(distinct_id: 'u', event: 'old', timestamp: Time.utc(2020, 1, 1))
    assert c.flush
    req, = ok_requests
    assert_equal true, req['body']['historical_migration']
  end

  def test_capture_mode_is_passed_to_the_library
    [['v0', '/batch/'], ['v1', '/i/v1/analytics/events']].each do |mode, path|
      IngestServer.reset
      c = client(capture_mode: mode)
      refute_match(/capture_mode/, log_text)
      assert c.capture(distinct_id: 'u', event: 'e')
      assert c.flush
      assert_equal([path], ok_requests.map { |r| r['path'] }.uniq)
    end
  end

  def test_compression_is_passed_to_the_library
    [['none', false], [:gzip, true]].each do |comp, gz|
      IngestServer.reset
      c = client(capture_compression: comp, **v0)
      assert c.capture(distinct_id: 'u', event: 'e')
      assert c.flush
      req, = ok_requests
      assert_equal gz, req['gzip'], comp
    end
  end

  def test_compress_request_false_never_warns
    c = client(compress_request: false, **v0)
    refute_match(/compress/, log_text)
    assert c.capture(distinct_id: 'u', event: 'e')
    assert c.flush
    req, = ok_requests
    assert_equal false, req['gzip']
    refute req['headers'].key?('content-encoding')
  end

  def v1_request
    reqs = IngestServer.requests.select { |r| r['path'].start_with?('/i/v1/analytics/events') }
    refute_empty reqs, IngestServer.requests.map { |r| r['path'] }.inspect
    reqs.last
  end

  def test_v1_lifts_event_options_into_options
    c = client(capture_mode: 'v1', compression: 'gzip')
    assert c.capture(distinct_id: 'u', event: 'all', process_person_profile: false, cookieless_mode: true,
                     disable_skew_correction: true, product_tour_id: 'tour-1')
    assert c.capture(distinct_id: 'u', event: 'none')
    assert c.capture(event: 'anon')
    assert c.flush
    req = v1_request
    assert_equal 'Bearer phc_test', req['headers']['authorization']
    ev = req['body']['batch'].to_h { |e| [e['event'], e] }
    assert_equal({ 'process_person_profile' => false, 'cookieless_mode' => true,
                   'disable_skew_correction' => true, 'product_tour_id' => 'tour-1' }, ev['all']['options'])
    ev.each_value { |e| assert_empty OPTION_KEYS & e['properties'].keys }
    assert_equal({}, ev['none']['options'])
    assert_equal({ 'process_person_profile' => false }, ev['anon']['options'])
  end

  def test_v1_compression_choices
    [['none', nil], ['gzip', 'gzip'], ['deflate', 'deflate']].each do |comp, encoding|
      IngestServer.reset
      c = client(capture_mode: 'v1', compression: comp)
      assert c.capture(distinct_id: 'u', event: 'e')
      assert c.flush
      assert_equal encoding, v1_request['headers']['content-encoding'], comp
    end
  end

  # No capture_mode anywhere: the library's default, capture v1 with zstd,
  # and the events carry posthog-ruby as their SDK (PostHog-Sdk-Info).
  def test_v1_is_the_default
    c = LibPostHog::Client.new(api_key: 'phc_test', host: IngestServer.url, logger: @logger)
    @clients << c
    c.capture(distinct_id: 'u', event: 'default-mode', properties: { '$session_id' => 's1' })
    assert c.flush
    req = v1_request
    assert_equal 'Bearer phc_test', req['headers']['authorization']
    assert_equal 'zstd', req['headers']['content-encoding']
    assert_match(%r{\Aposthog-ruby/}, req['headers']['posthog-sdk-info'])
    ev = req['body']['batch'][0]
    assert_equal 's1', ev['session_id']
    refute ev['properties'].key?('$lib')
  end
end
