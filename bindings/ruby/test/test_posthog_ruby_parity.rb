# frozen_string_literal: true

require_relative 'test_helper'
require 'open3'
require 'rbconfig'

# posthog-ruby 3.23.2's behaviour where an application depends on it:
# before_send's key types, clients without an API key, personless capture,
# PostHog::VERSION under the compat layer.
class TestPostHogRubyParity < LibPostHogTest
  # without the SDK's String keys ($lib, $lib_version, $is_server in capture v0)
  def own(props)
    props.reject { |k, _| k.is_a?(String) && (k.start_with?('$lib') || k == '$is_server') }
  end

  # A filter written for posthog-ruby: properties keep the caller's key
  # types (Symbols here), so deleting :email strips the email.
  def test_before_send_sees_posthog_ruby_key_types
    seen = []
    c = client(before_send: lambda { |ev|
      seen << Marshal.load(Marshal.dump(ev))
      ev[:properties].delete(:email)
      ev[:properties][:nested].delete(:token) if ev[:properties][:nested]
      ev[:'$set']&.delete(:email)
      ev
    })
    uuid = '01900000-0000-7000-8000-000000000002'
    assert c.capture(distinct_id: 'u', event: 'signed_up', uuid: uuid,
                     properties: { email: 'a@b.c', plan: 'pro', 'kept' => 1, nested: { token: 't', 'x' => [{ y: 1 }] } })
    assert c.identify(distinct_id: 'u', properties: { email: 'a@b.c', name: 'A' })
    assert c.flush
    ev = seen.first
    # top level: Symbols, except 'uuid' (a String key in posthog-ruby)
    assert_equal uuid, ev['uuid']
    assert_equal %i[event distinct_id timestamp properties].sort, (ev.keys - ['uuid']).sort
    assert_equal 'signed_up', ev[:event]
    props = ev[:properties]
    assert_equal 'a@b.c', props[:email]
    assert_equal 1, props['kept'] # a String key stays a String
    assert_equal [{ y: 1 }], props[:nested]['x']
    refute props.key?('email')
    assert_equal({ email: 'a@b.c', name: 'A' }, seen[1][:'$set'])
    assert_equal({ email: 'a@b.c', name: 'A' }, own(seen[1][:properties]))
    sent = events
    assert_equal %w[signed_up $identify], sent.map { |e| e['event'] }
    refute sent[0]['properties'].key?('email'), 'the filter stripped the email'
    assert_equal 'pro', sent[0]['properties']['plan']
    assert_equal({ 'x' => [{ 'y' => 1 }] }, sent[0]['properties']['nested'])
    refute sent[1]['$set'].key?('email')
  end

  def test_before_send_group_identify_and_alias_keys_are_symbols
    seen = []
    c = client(before_send: ->(ev) { seen << ev; ev })
    assert c.group_identify(group_type: 'company', group_key: 'acme', properties: { name: 'Acme' })
    assert c.alias(distinct_id: 'u', alias: 'v')
    assert c.flush
    assert_equal({ '$group_type': 'company', '$group_key': 'acme', '$group_set': { name: 'Acme' } },
                 own(seen[0][:properties]))
    assert_equal({ distinct_id: 'u', alias: 'v' }, own(seen[1][:properties]))
    assert_equal 2, events.size
  end

  def test_client_without_api_key_is_disabled_not_raising
    old = ENV.delete('POSTHOG_API_KEY')
    [{}, { api_key: '' }, { api_key: "  \n" }, { test_mode: true }, { disabled: true }].each do |opts|
      log = StringIO.new
      c = LibPostHog::Client.new(host: IngestServer.url, logger: Logger.new(log), **opts)
      refute c.capture(distinct_id: 'u', event: 'e'), opts.inspect
      refute c.identify(distinct_id: 'u', properties: { a: 1 })
      refute c.flush
      assert_nil c.get_feature_flag('f', 'u')
      assert_match(/ERROR.*api_key is missing or empty/, log.string, opts.inspect)
      refute c.shutdown
    end
    log = StringIO.new
    LibPostHog::Client.new(logger: Logger.new(log), silence_disabled_client_error: true)
    assert_empty log.string
    assert_empty events
  ensure
    ENV['POSTHOG_API_KEY'] = old if old
  end

  def test_capture_without_distinct_id_is_personless
    c = client
    assert c.capture(event: 'anonymous_thing', properties: { a: 1 })
    assert c.capture(event: 'with_person_flag', properties: { '$process_person_profile' => true })
    assert c.flush
    ev = events
    assert_equal %w[anonymous_thing with_person_flag], ev.map { |e| e['event'] }
    assert_match UUID_RE, ev[0]['distinct_id']
    assert_equal false, ev[0]['properties']['$process_person_profile']
    refute_equal ev[0]['distinct_id'], ev[1]['distinct_id']
    assert_equal true, ev[1]['properties']['$process_person_profile'] # the caller's wins
  end

  # The same precedence as the C library and the Python binding: the
  # event's own properties win over super_properties.
  def test_super_properties_do_not_override_the_events_own
    c = client(super_properties: { plan: 'free', app: 'web' })
    assert c.capture(distinct_id: 'u', event: 'e', properties: { plan: 'pro' })
    assert c.capture(distinct_id: 'u', event: 'f')
    assert c.flush
    e, f = events
    assert_equal %w[pro web], e['properties'].values_at('plan', 'app')
    assert_equal %w[free web], f['properties'].values_at('plan', 'app')
  end

  # In a child process: the compat layer defines ::PostHog for good.
  def test_compat_defines_posthog_version
    code = <<~RB
      require 'libposthog/compat'
      puts PostHog::VERSION
      puts PostHog::Client.equal?(LibPostHog::Client)
    RB
    out, err, st = Open3.capture3(RbConfig.ruby, '-w', '-e', code)
    assert st.success?, err
    assert_equal ['3.23.2', 'true'], out.split("\n")
    assert_equal LibPostHog::POSTHOG_RUBY_VERSION, out.split("\n").first
  end
end
