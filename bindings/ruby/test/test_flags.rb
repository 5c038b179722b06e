# frozen_string_literal: true

require_relative 'test_helper'

# Feature flags (posthog-ruby's API) against the ingest server's /flags and
# /flags/definitions endpoints.
class TestFlags < LibPostHogTest
  V1 = {
    featureFlags: { beta: true, exp: 'variant-b', off: false },
    featureFlagPayloads: { beta: JSON.generate({ color: 'blue' }), exp: '[1, 2]' },
    errorsWhileComputingFlags: false
  }.freeze

  V2 = {
    flags: {
      beta: { key: 'beta', enabled: true, variant: nil,
              reason: { code: 'condition_match', description: 'Matched condition set 1' },
              metadata: { id: 5, version: 3, payload: JSON.generate({ n: 1 }) } },
      exp: { key: 'exp', enabled: true, variant: 'test',
             reason: { code: 'condition_match', description: 'Matched condition set 2' },
             metadata: { id: 6, version: 1, payload: JSON.generate('plain text') } },
      off: { key: 'off', enabled: false, variant: nil,
             reason: { code: 'no_condition_match', description: 'No matching condition set' },
             metadata: { id: 7, version: 1, payload: nil } }
    },
    errorsWhileComputingFlags: false,
    requestId: 'req-42'
  }.freeze

  SECRET = 'phs_flags_secret'

  DEFINITIONS = {
    flags: [
      { id: 1, key: 'simple-50', active: true,
        filters: { groups: [{ properties: [], rollout_percentage: 50 }] } },
      { id: 2, key: 'pro-only', active: true,
        filters: { groups: [{ properties: [{ key: 'plan', value: 'pro', operator: 'exact', type: 'person' }],
                              rollout_percentage: 100 }],
                   payloads: { 'true' => JSON.generate({ tier: 2 }) } } },
      { id: 3, key: 'needs-server', active: true,
        filters: { groups: [{ properties: [{ key: 'country', value: 'FR', operator: 'exact', type: 'person' }],
                              rollout_percentage: 100 }] } }
    ],
    group_type_mapping: {},
    cohorts: {}
  }.freeze

  def set_flags(body, status: 200, responses: nil)
    cfg = { default: { status: status, body: body } }
    cfg[:responses] = responses if responses
    IngestServer.post('/_control/flags', cfg)
  end

  def flags_requests
    IngestServer.get('/_control/flags/requests')['requests']
  end

  def definitions_requests
    IngestServer.get('/_control/flags/definitions/requests')['requests']
  end

  def called(c)
    assert c.flush
    events.select { |e| e['event'] == '$feature_flag_called' }
  end

  def test_values_of_both_shapes
    set_flags(V1)
    c = client
    assert_equal true, c.get_feature_flag('beta', 'u1')
    assert_equal 'variant-b', c.get_feature_flag('exp', 'u1')
    assert_equal false, c.get_feature_flag('off', 'u1')
    assert_equal false, c.get_feature_flag('missing', 'u1') # posthog-ruby: not in the answer is false
    assert_equal true, c.is_feature_enabled('exp', 'u1')
    assert_equal false, c.is_feature_enabled('off', 'u1')
    assert_equal false, c.is_feature_enabled('missing', 'u1')
    assert_nil c.get_feature_flag('missing', 'u1', only_evaluate_locally: true) # nothing evaluated it
    req = flags_requests.first
    assert_equal 'v=2', req['query']
    assert_equal 'u1', req['body']['distinct_id']
    assert_equal ['beta'], req['body']['flag_keys_to_evaluate']

    set_flags(V2)
    assert_equal 'test', c.get_feature_flag('exp', 'u1')
    r = c.get_feature_flag_result('beta', 'u1')
    assert_instance_of LibPostHog::FeatureFlagResult, r
    assert_equal ['beta', true, nil, { 'n' => 1 }, 'Matched condition set 1'],
                 [r.key, r.enabled?, r.variant, r.payload, r.reason]
    assert_equal true, r.value
    assert_equal 'test', c.get_feature_flag_result('exp', 'u1').value
    assert_nil c.get_feature_flag_result('missing', 'u1')
  end

  # posthog-ruby 3.23.2: get_feature_flag_payload and get_all_flags_and_payloads
  # give the payload's JSON text (get_feature_flag_result and snapshots parse it)
  def test_payloads_are_json_text_and_silent
    set_flags(V1)
    c = client
    assert_equal '{"color":"blue"}', c.get_feature_flag_payload('beta', 'u1')
    assert_equal '[1, 2]', c.get_feature_flag_payload('exp', 'u1')
    assert_equal '[1, 2]', c.get_feature_flag_payload('exp', 'u1', match_value: 'variant-b')
    assert_nil c.get_feature_flag_payload('exp', 'u1', match_value: 'other')
    assert_nil c.get_feature_flag_payload('off', 'u1')
    assert_equal({ 'beta' => true, 'exp' => 'variant-b', 'off' => false }, c.get_all_flags('u1'))
    assert_equal({ featureFlags: { 'beta' => true, 'exp' => 'variant-b', 'off' => false },
                   featureFlagPayloads: { 'beta' => '{"color":"blue"}', 'exp' => '[1, 2]' } },
                 c.get_all_flags_and_payloads('u1'))
    assert_empty called(c)
  end

  def test_feature_flag_called_once_with_properties
    set_flags(V2)
    c = client
    3.times { assert_equal true, c.get_feature_flag('beta', 'u1') }
    assert_equal true, c.is_feature_enabled('beta', 'u1')
    ev = called(c)
    assert_equal 1, ev.size
    p = ev[0]['properties']
    assert_equal 'u1', ev[0]['distinct_id']
    assert_equal 'beta', p['$feature_flag']
    assert_equal true, p['$feature_flag_response']
    assert_equal true, p['$feature/beta']
    assert_equal false, p['locally_evaluated']
    assert_equal 5, p['$feature_flag_id']
    assert_equal 3, p['$feature_flag_version']
    assert_equal 'Matched condition set 1', p['$feature_flag_reason']
    assert_equal 'req-42', p['$feature_flag_request_id']
    assert_equal({ 'n' => 1 }, p['$feature_flag_payload'])
    c.get_feature_flag('beta', 'u2')
    c.get_feature_flag('off', 'u3', send_feature_flag_events: false)
    assert_equal [%w[u1 beta], %w[u2 beta]],
                 called(c).map { |e| [e['distinct_id'], e['properties']['$feature_flag']] }.sort
  end

  def test_groups_and_disable_geoip
    set_flags(V1)
    c = client
    c.get_feature_flag('beta', 'u1', groups: { company: 'acme' }, person_properties: { plan: 'pro' },
                                     group_properties: { company: { size: 50 } })
    c.get_feature_flag('exp', 'u1', disable_geoip: true)
    reqs = flags_requests
    assert_equal({ 'company' => 'acme' }, reqs[0]['body']['groups'])
    assert_equal({ 'plan' => 'pro' }, reqs[0]['body']['person_properties'])
    # posthog-ruby adds each group's $group_key to its properties
    assert_equal({ '$group_key' => 'acme', 'size' => 50 }, reqs[0]['body']['group_properties']['company'])
    assert_equal false, reqs[0]['body']['geoip_disable'] # posthog-ruby's default
    assert_equal true, reqs[1]['body']['geoip_disable']
    ev = called(c).to_h { |e| [e['properties']['$feature_flag'], e['properties']] }
    assert_equal({ 'company' => 'acme' }, ev['beta']['$groups'])
    assert_equal true, ev['exp']['$geoip_disable']
    c2 = client(disable_geoip: true)
    c2.get_feature_flag('beta', 'u9')
    assert_equal true, flags_requests.last['body']['geoip_disable']
  end

  def test_server_error_is_nil_never_raises
    set_flags({ type: 'server_error' }, status: 500)
    c = client
    assert_nil c.get_feature_flag('beta', 'u1')
    assert_nil c.is_feature_enabled('beta', 'u1')
    assert_nil c.get_feature_flag_payload('beta', 'u1')
    assert_nil c.get_feature_flag_result('beta', 'u1')
    assert_equal({}, c.get_all_flags('u1'))
    snap = c.evaluate_flags('u1')
    assert_empty snap.keys
    assert_equal 'api_error_500', snap.error
    assert_equal false, snap.enabled?('beta')
    ev = called(c)
    refute_empty ev
    assert(ev.all? { |e| e['properties']['$feature_flag_error'] == 'api_error_500' })
    assert(ev.all? { |e| e['properties']['$feature_flag_response'].nil? })
  end

  def test_bad_arguments_are_logged
    set_flags(V1)
    c = client
    assert_nil c.get_feature_flag('beta', 'u1', person_properties: 'nope')
    assert_match(/person_properties must be a Hash/, log_text)
    assert_nil c.get_feature_flag('beta', nil)
    assert_empty flags_requests
  end

  def test_snapshot_api
    set_flags(V2)
    c = client
    snap = c.evaluate_flags('u1', person_properties: { plan: 'pro' })
    assert_instance_of LibPostHog::FeatureFlagEvaluations, snap
    assert_equal 1, flags_requests.size
    assert_equal %w[beta exp off], snap.keys.sort
    assert_equal({ 'n' => 1 }, snap.get_flag_payload('beta'))
    assert_equal 'plain text', snap.get_flag_payload(:exp)
    assert_empty called(c)
    assert_equal true, snap.enabled?('beta')
    assert_equal true, snap.is_enabled('beta')
    assert_equal 'test', snap.get_flag('exp')
    assert_nil snap.get_flag('missing')
    assert_equal 1, flags_requests.size
    by_flag = called(c).to_h { |e| [e['properties']['$feature_flag'], e['properties']] }
    assert_equal %w[beta exp missing], by_flag.keys.sort
    assert_equal 'flag_missing', by_flag['missing']['$feature_flag_error']

    assert_equal %w[beta exp], snap.only_accessed.keys.sort
    only = snap.only(%w[beta nope])
    assert_equal ['beta'], only.keys
    assert_match(/will be dropped: nope/, log_text)
    assert_nil only.get_flag('exp')
    c.capture(distinct_id: 'u1', event: 'checkout', flags: only)
    c.capture(distinct_id: 'u1', event: 'page', flags: snap)
    c.capture(distinct_id: 'u1', event: 'signup', send_feature_flags: true)
    assert c.flush
    ev = events.to_h { |e| [e['event'], e['properties']] }
    assert_equal true, ev['checkout']['$feature/beta']
    refute ev['checkout'].key?('$feature/exp')
    assert_equal ['beta'], ev['checkout']['$active_feature_flags']
    assert_equal 'test', ev['page']['$feature/exp']
    assert_equal false, ev['page']['$feature/off']
    assert_equal %w[beta exp], ev['page']['$active_feature_flags']
    assert_equal %w[beta exp], ev['signup']['$active_feature_flags']
    assert_equal 2, flags_requests.size # send_feature_flags evaluated once more

    empty = c.evaluate_flags(nil)
    assert_empty empty.keys
    assert_equal 2, flags_requests.size
  end

  def test_snapshot_is_freed
    set_flags(V1)
    c = client
    freed = 0
    klass = LibPostHog::FlagsSnapshot
    orig = klass.method(:finalizer)
    klass.singleton_class.send(:remove_method, :finalizer)
    klass.define_singleton_method(:finalizer) do |ptr|
      inner = orig.call(ptr)
      proc { freed += 1; inner.call }
    end
    begin
      10.times { c.evaluate_flags('u1').enabled?('beta') }
      GC.start
      GC.start
      assert_operator freed, :>, 0
    ensure
      klass.singleton_class.send(:remove_method, :finalizer)
      klass.define_singleton_method(:finalizer, orig)
    end
  end

  def test_local_evaluation_with_secret_key
    IngestServer.post('/_control/flags/definitions', { body: DEFINITIONS, secret_key: SECRET })
    set_flags({ featureFlags: { 'needs-server' => true } })
    c = client(personal_api_key: SECRET, feature_flags_polling_interval: 60,
               feature_flag_request_timeout_seconds: 2)
    assert c.wait_for_flag_definitions(timeout: 10)
    assert c.definitions_loaded?
    assert_equal "Bearer #{SECRET}", definitions_requests.first['headers']['authorization']
    assert_equal true, c.get_feature_flag('simple-50', 'user_1')
    assert_equal true, c.get_feature_flag('pro-only', 'u1', person_properties: { plan: 'pro' })
    assert_equal false, c.get_feature_flag('pro-only', 'u2', person_properties: { plan: 'free' })
    assert_equal('{"tier":2}', c.get_feature_flag_payload('pro-only', 'u1', person_properties: { plan: 'pro' }))
    assert_empty flags_requests
    assert_equal true, c.get_feature_flag('needs-server', 'u1')
    assert_equal [['needs-server']], flags_requests.map { |r| r['body']['flag_keys_to_evaluate'] }
    assert_nil c.get_feature_flag('needs-server', 'u1', only_evaluate_locally: true)
    assert_equal 1, flags_requests.size
    ev = called(c).to_h { |e| [[e['distinct_id'], e['properties']['$feature_flag']], e['properties']] }
    assert_equal true, ev[%w[user_1 simple-50]]['locally_evaluated']
    assert_equal 'Evaluated locally', ev[%w[user_1 simple-50]]['$feature_flag_reason']
    assert_equal false, ev[%w[u1 needs-server]]['locally_evaluated']

    n = definitions_requests.size
    c.reload_feature_flags
    assert_equal n + 1, definitions_requests.size
  end

  # A flag call waiting on /flags releases the GVL: other Ruby threads run.
  def test_waiting_flag_call_does_not_block_other_threads
    set_flags(V1, responses: [{ delay_ms: 1500 }])
    c = client
    value = nil
    t = Thread.new { value = c.get_feature_flag('beta', 'u1') }
    ticks = 0
    ticks += 1 until t.join(0.01)
    assert_equal true, value
    assert_operator ticks, :>=, 10
  end

  def test_reload_without_secret_key_logs
    c = client
    assert_nil c.reload_feature_flags
    assert_match(/personal_api_key/, log_text)
    refute c.definitions_loaded?
  end
end
