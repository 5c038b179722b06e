# frozen_string_literal: true

require_relative 'test_helper'
require_relative 'reference/libposthog_sdk'

# Error tracking: capture_exception's $exception_list (posthog-ruby's shape:
# cause chains, Ruby backtraces as frames with source context), checked on
# what the local ingestion server received, and compared field by field with
# what posthog-ruby 3.23.2 sent for the same exceptions (its recording).
class ExceptionsTest < LibPostHogTest
  class AppError < StandardError; end

  def parse(value)
    Integer(value)
  end

  def load_value(value)
    parse(value)
  rescue ArgumentError
    raise AppError, "could not load #{value.inspect}"
  end

  def rescued
    yield
    flunk('did not raise')
  rescue StandardError => e
    e
  end

  def only_exception
    evs = wait_for { (e = events.select { |x| x['event'] == '$exception' }).empty? ? nil : e }
    assert_equal 1, evs.length
    evs.first
  end

  def test_exception_options_struct_layout
    skip('layout checked for LP64 only') unless FFI::Pointer.size == 8
    s = LibPostHog::Native::ExceptionOptions
    assert_equal 72, s.size
    assert_equal [0, 8, 16, 24, 32, 40, 48, 56, 64], s.members.map { |m| s.offset_of(m) }
  end

  def test_cause_chain_and_frames
    c = client
    e = rescued { load_value('x') }
    assert c.capture_exception(e, 'user-1', { 'plan' => 'pro' })
    assert c.flush
    ev = only_exception
    assert_equal 'user-1', ev['distinct_id']
    p = ev['properties']
    assert_equal 'pro', p['plan']
    assert_equal 'error', p['$exception_level']
    list = p['$exception_list']
    assert_equal ['ExceptionsTest::AppError', 'ArgumentError'], list.map { |x| x['type'] }
    assert_equal 'could not load "x"', list[0]['value']
    assert_equal({ 'type' => 'generic', 'handled' => true, 'exception_id' => 0 }, list[0]['mechanism'])
    assert_equal({ 'type' => 'chained', 'handled' => true, 'exception_id' => 1, 'source' => 'cause',
                   'parent_id' => 0 }, list[1]['mechanism'])
    list.each { |x| assert_equal %w[mechanism stacktrace type value], x.keys.sort }
    frames = list[0]['stacktrace']['frames']
    assert_equal 'raw', list[0]['stacktrace']['type']
    last = frames.last # the raise: the innermost frame comes last
    assert_equal 'rescue in load_value', last['function']
    assert_equal __FILE__, last['abs_path']
    assert_equal 'ruby', last['platform']
    assert_equal true, last['in_app']
    assert_equal "    raise AppError, \"could not load \#{value.inspect}\"", last['context_line']
    assert_equal '  rescue ArgumentError', last['pre_context'].last
    assert_equal 5, last['pre_context'].length
    assert_equal 5, last['post_context'].length
    assert_equal %w[abs_path context_line filename function in_app lineno platform post_context pre_context],
                 last.keys.sort
    assert_equal ['rescued', 'block in test_cause_chain_and_frames', 'load_value'], frames[-4..-2].map { |f| f['function'] }
    # the frames of gems (minitest, this gem) are not the application's: no context
    gem_frames = frames.reject { |f| f['in_app'] }
    refute_empty gem_frames
    gem_frames.each do |f|
      assert_equal File.basename(f['abs_path']), f['filename']
      refute f.key?('context_line')
    end
    assert_includes list[1]['stacktrace']['frames'].last(2).map { |f| f['function'] }, 'parse'
  end

  def test_string_never_raised_mechanism_and_level
    c = client
    assert c.capture_exception('plain message', 'u', { '$exception_level' => 'warning' })
    assert c.capture_exception(AppError.new('never raised'), 'u', {}, mechanism: { type: 'rack', handled: false })
    assert_nil c.capture_exception(42, 'u')
    assert_match(/expected an Exception or a String, got Integer/, log_text)
    assert c.flush
    evs = wait_for { (e = events).length >= 2 ? e : nil }
    assert_equal 2, evs.length
    s, n = evs
    assert_equal 'warning', s['properties']['$exception_level']
    assert_equal [{ 'type' => 'Error', 'value' => 'plain message',
                    'mechanism' => { 'type' => 'generic', 'handled' => true, 'exception_id' => 0 },
                    'stacktrace' => nil }], s['properties']['$exception_list']
    ex = n['properties']['$exception_list'].first
    assert_nil ex['stacktrace']
    assert_equal({ 'type' => 'rack', 'handled' => false, 'exception_id' => 0 }, ex['mechanism'])
  end

  def test_without_distinct_id_personless
    c = client
    assert c.capture_exception(rescued { parse('y') })
    assert c.flush
    ev = only_exception
    assert_match UUID_RE, ev['distinct_id']
    assert_equal false, ev['properties']['$process_person_profile']
  end

  def test_chain_is_bounded
    c = client
    deep = lambda do |n|
      raise ArgumentError, '0' if n.zero?

      begin
        deep.call(n - 1)
      rescue ArgumentError
        raise ArgumentError, n.to_s
      end
    end
    assert c.capture_exception(rescued { deep.call(70) }, 'u')
    assert c.flush
    list = only_exception['properties']['$exception_list']
    assert_equal LibPostHog::Exceptions::MAX_CHAIN, list.length
    assert_equal '70', list.first['value']
    assert_operator JSON.generate(list).bytesize, :<=, LibPostHog::Exceptions::MAX_LIST_BYTES
    assert(list.all? { |x| x['stacktrace']['frames'].length <= LibPostHog::Exceptions::MAX_FRAMES })
  end

  # A list too large for an event loses its source context (pre/post lines
  # first), not the frames: the error report still fits max_event_bytes.
  def test_large_list_drops_context_first
    frame = { 'function' => 'f', 'lineno' => 1, 'context_line' => 'x' * 100,
              'pre_context' => ['p' * 100] * 5, 'post_context' => ['q' * 100] * 5 }
    list = Array.new(3) { { 'type' => 'E', 'stacktrace' => { 'frames' => Array.new(10) { frame.dup } } } }
    small = LibPostHog::Exceptions.fit(Marshal.load(Marshal.dump(list)), 1_000_000)
    assert_equal list, small
    mid = LibPostHog::Exceptions.fit(Marshal.load(Marshal.dump(list)), 10_000)
    f = mid[0]['stacktrace']['frames'][0]
    assert_equal %w[context_line function lineno], f.keys.sort
    tiny = LibPostHog::Exceptions.fit(Marshal.load(Marshal.dump(list)), 1_000)
    assert_equal %w[function lineno], tiny[2]['stacktrace']['frames'][9].keys.sort
    assert_equal 10, tiny[2]['stacktrace']['frames'].length
  end

  def test_backtrace_line_forms
    deps = []
    root = '/srv/app'
    f = LibPostHog::Exceptions.frame("/srv/app/lib/a.rb:12:in `block in run'", root, deps)
    assert_equal ['lib/a.rb', 12, 'block in run'], [f['filename'], f['lineno'], f['function']]
    f = LibPostHog::Exceptions.frame("/srv/app/lib/a.rb:3:in 'Foo::Bar#baz'", root, deps) # Ruby 3.4
    assert_equal 'baz', f['function']
    f = LibPostHog::Exceptions.frame('/elsewhere/x.rb:7', root, ['/elsewhere'])
    assert_equal ['x.rb', nil, false], [f['filename'], f['function'], f['in_app']]
    assert_nil LibPostHog::Exceptions.frame('not a backtrace line', root, deps)
  end

  # posthog-ruby 3.23.2's $exception events for the same exceptions (a cause
  # chain, a deeper backtrace, one never raised, a String, a mechanism, no
  # distinct_id), as recorded in fixtures/posthog-ruby-3.23.2/exceptions.json
  # by tools/record_ruby_reference.rb (test_reference.rb records posthog-ruby
  # again, live, when it can be loaded): every $exception_list equal field by
  # field, frames and source context included; the other properties equal
  # but $exception_level, which the C library always sends (README).
  def test_matches_posthog_ruby_recording
    theirs = JSON.parse(File.read(File.join(RubyRef::FIXTURES, 'exceptions.json')))['events']
    old_logger = LibPostHog.logger
    begin
      ours = RubyRef.run('exceptions', RubyRef::LIBPOSTHOG, IngestServer)['events']
    ensure
      LibPostHog.logger = old_logger
    end
    assert_equal 6, theirs.length
    assert_equal theirs.length, ours.length
    theirs.zip(ours).each_with_index do |(t, o), n|
      assert_equal '$exception', o['event']
      assert_equal t['distinct_id'], o['distinct_id'], "event #{n}"
      tl = t['properties']['$exception_list']
      ol = o['properties']['$exception_list']
      assert_equal tl.length, ol.length, "event #{n}"
      tl.zip(ol).each_with_index do |(te, oe), i|
        assert_equal te.keys.sort, oe.keys.sort, "event #{n} exception #{i}"
        %w[type value mechanism].each { |k| assert_equal te[k], oe[k], "event #{n} exception #{i} #{k}" }
        (te['stacktrace'] || {}).fetch('frames', []).each_with_index do |f, j|
          assert_equal f, oe['stacktrace']['frames'][j], "event #{n} exception #{i} frame #{j}"
        end
        assert_equal te, oe
      end
      assert_equal 'error', o['properties']['$exception_level']
      assert_equal t['properties'], o['properties'].reject { |k, _| k == '$exception_level' }
    end
    frames = ours[0]['properties']['$exception_list'][0]['stacktrace']['frames']
    assert_equal ['block in rescued', 'block in chained', 'nested_failure', 'charge', 'rescue in charge'],
                 frames.map { |f| f['function'] }
  end
end
