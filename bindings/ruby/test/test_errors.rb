# frozen_string_literal: true

require_relative 'test_helper'

# Issue 9: self-referencing data, masked secrets and option errors that say
# what to write, drop reasons by name, the server's answer, flush_report.
class TestErrors < LibPostHogTest
  def test_self_referencing_hash_is_refused_and_counted
    c = client
    props = { 'a' => { 'b' => 1 } }
    props['a']['self'] = props['a']
    refute c.capture(distinct_id: 'u', event: 'loop', properties: props) # no SystemStackError
    assert_match(/event "loop" refused: .*properties\["a"\]\["self"\] refers back/, log_text)
    list = [1]
    list << list
    refute c.capture(distinct_id: 'u', event: 'loop2', properties: { 'l' => list })
    assert c.capture(distinct_id: 'u', event: 'fine')
    assert c.flush
    assert_equal ['fine'], events.map { |e| e['event'] }
    assert_equal 2, c.stats[:dropped][:invalid]
    assert_equal 1, c.stats[:captured]
  end

  def test_deep_nesting_is_refused_not_a_stack_overflow
    c = client
    deep = {}
    cur = deep
    10_000.times { cur = (cur['x'] = {}) }
    refute c.capture(distinct_id: 'u', event: 'deep', properties: deep)
    assert_match(/nests deeper than/, log_text)
    assert_equal 1, c.stats[:dropped][:invalid]
  end

  def test_rejected_api_key_is_masked_and_disables
    ENV['POSTHOG_API_KEY'] = 'phc_from_the_environment'
    c = LibPostHog::Client.new(api_key: "phc_verysecretvalue\u0001tail", host: IngestServer.url,
                               logger: @logger)
    @clients << c
    assert_match(/api_key="phc_\*\*\*\*/, log_text)
    refute_match(/verysecret/, log_text)
    # not sent with the environment's key instead
    refute c.capture(distinct_id: 'u', event: 'e')
  ensure
    ENV.delete('POSTHOG_API_KEY')
  end

  def test_refused_host_disables_instead_of_default_host
    c = LibPostHog::Client.new(api_key: 'phc_test', host: 'ftp://eu.posthog.com', logger: @logger)
    @clients << c
    assert_match(/host="ftp:\/\/eu.posthog.com" is invalid: .*https:\/\//, log_text)
    refute c.capture(distinct_id: 'u', event: 'e')
  end

  def test_option_errors_name_key_value_and_range
    c = client(max_queue_bytes: '32M')
    assert_match(/max_queue_bytes="32M" is invalid: expected a whole number from 65536/, log_text)
    assert c.capture(distinct_id: 'u', event: 'still works')
  end

  def test_drop_reasons_come_from_the_library
    assert_equal %i[queue_full invalid too_large rejected retries_exhausted before_send shutdown
                    storage_full expired corrupt server_dropped], LibPostHog::Native::DROP_REASONS
    assert_equal :unknown_15, LibPostHog::Native.drop_reason(15)
  end

  def test_server_dropped_reaches_on_drop_by_name
    drops = Queue.new
    c = client(capture_mode: 'v1', on_drop: proc { |r| drops << r })
    IngestServer.faults([{ verdicts: [{ match: { index: 0 }, result: 'drop', details: 'billing_limit_exceeded' }] }])
    c.capture(distinct_id: 'u', event: 'over-quota')
    c.flush
    r = drops.pop
    assert_equal :server_dropped, r.reason
    assert_match(/billing_limit_exceeded/, r.message)
  end

  def test_on_error_gets_the_server_answer_and_flush_report_tells
    errors = Queue.new
    c = client(on_error: proc { |status, msg| errors << [status, msg] }, max_retries: 0)
    IngestServer.faults([{ status: 401, body: '{"type":"authentication_error","detail":"Project API key invalid"}' }])
    c.capture(distinct_id: 'u', event: 'e')
    r = c.flush_report(timeout: 10)
    assert_equal :undelivered, r[:status]
    assert_equal 1, r[:dropped]
    status, msg = errors.pop
    assert_equal 401, status
    assert_match(/Project API key invalid/, msg)
    c.capture(distinct_id: 'u', event: 'ok')
    r = c.flush_report(timeout: 10)
    assert_equal :ok, r[:status]
    assert_equal 1, r[:delivered]
  end
end
