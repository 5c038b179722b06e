# frozen_string_literal: true

require_relative 'test_helper'

# Threads and fork (Puma/Unicorn/Sidekiq style preforking).
class TestConcurrency < LibPostHogTest
  def test_threads
    c = client
    threads = Array.new(8) do |t|
      Thread.new do
        200.times { |i| c.capture(distinct_id: "t#{t}", event: 'threaded', properties: { i: i }) }
      end
    end
    threads.each(&:join)
    assert c.flush
    evs = events
    assert_equal 1600, evs.size
    assert_equal 1600, evs.map { |e| e['uuid'] }.uniq.size
    8.times do |t|
      assert_equal (0...200).to_a, evs.select { |e| e['distinct_id'] == "t#{t}" }.map { |e| e['properties']['i'] }
    end
    assert_equal 0, c.stats[:dropped_total]
  end

  def test_threads_with_flush_and_before_send
    c = client(before_send: ->(ev) { ev[:properties]['bs'] = Thread.current.object_id; ev })
    threads = Array.new(4) do |t|
      Thread.new do
        50.times do |i|
          c.capture(distinct_id: "t#{t}", event: 'e', properties: { i: i })
          c.flush if (i % 10).zero?
        end
      end
    end
    Timeout.timeout(60) { threads.each(&:join) }
    assert c.flush
    assert_equal 200, events.size
    assert(events.all? { |e| e['properties']['bs'] })
  end

  # Runs the block in a forked child; fails the test with the child's
  # failure message when the block raises.
  def in_child(&block)
    rd, wr = IO.pipe
    pid = fork do
      rd.close
      begin
        block.call
        wr.write('OK')
      rescue Exception => e # rubocop:disable Lint/RescueException
        wr.write("#{e.class}: #{e.message}\n#{e.backtrace.first(5).join("\n")}")
      ensure
        wr.close
      end
    end
    wr.close
    msg = nil
    Timeout.timeout(60) do
      msg = rd.read
      Process.wait(pid)
    end
    rd.close
    assert_equal 'OK', msg
    $?
  end

  def test_fork
    errors = Queue.new
    c = client(on_error: proc { |s, m| errors << [s, m] })
    assert c.capture(distinct_id: 'parent', event: 'before_fork')
    assert c.flush
    # make the parent use the library's flusher-thread callbacks before forking
    IngestServer.faults([{ status: 400 }])
    c.capture(distinct_id: 'parent', event: 'rejected_in_parent')
    assert c.flush
    assert_equal 400, errors.pop[0]
    c.capture(distinct_id: 'parent', event: 'queued_at_fork') # may be in flight while forking

    2.times do |n|
      in_child do
        child_errors = Queue.new
        cc = LibPostHog::Client.new(api_key: 'phc_test', host: IngestServer.url, logger: Logger.new(nil),
                                    on_error: proc { |s, _| child_errors << s })
        raise 'child capture failed' unless c.capture(distinct_id: "child#{n}", event: 'from_child')
        raise 'child flush failed' unless c.flush(timeout: 20)
        raise 'child stats' unless c.stats[:sent] == 1

        # on_error in the child: a callback from the child's own flusher thread
        Timeout.timeout(20) { sleep 0.02 until IngestServer.events.any? { |e| e['event'] == 'queued_at_fork' } }
        IngestServer.faults([{ status: 400 }])
        cc.capture(distinct_id: "child#{n}", event: 'rejected_in_child')
        raise 'child flush 2 failed' unless cc.flush(timeout: 20)
        raise "child on_error not called (#{child_errors.size})" unless child_errors.size == 1 && child_errors.pop == 400

        cc.shutdown
      end
    end
    assert c.capture(distinct_id: 'parent', event: 'after_fork')
    assert c.flush
    names = events.map { |e| e['event'] }
    assert_equal 1, names.count('before_fork')
    assert_equal 1, names.count('queued_at_fork'), 'the parent delivers its own queue, once'
    assert_equal 2, names.count('from_child')
    assert_equal 1, names.count('after_fork')
    refute_includes names, 'rejected_in_child'
    assert_equal 0, IngestServer.summary['duplicate_uuids']
  end

  def test_forked_child_delivers_at_exit_without_flush
    c = client
    c.capture(distinct_id: 'parent', event: 'warmup')
    assert c.flush
    pid = fork do
      c.capture(distinct_id: 'child', event: 'child_exit_flush')
      # no flush: the at_exit hook shuts the client down
    end
    Timeout.timeout(30) { Process.wait(pid) }
    assert_equal 0, $?.exitstatus
    assert_includes events.map { |e| e['event'] }, 'child_exit_flush'
  end

  def test_fork_hook_resets_ruby_side
    assert Process.respond_to?(:_fork), 'Ruby >= 3.1 has Process._fork' if RUBY_VERSION >= '3.1'
    c = client
    IngestServer.faults([{ status: 400 }])
    reports = Queue.new
    c2 = client(on_drop: proc { |r| reports << r.reason })
    c2.capture(distinct_id: 'p', event: 'x')
    assert c2.flush
    assert_equal :rejected, reports.pop
    in_child do
      # the reporter thread did not survive fork; a new one must start
      c2.capture(distinct_id: 'c', event: '')
      raise 'flush' unless c2.flush(timeout: 10)
      raise 'no drop report in child' unless reports.size == 1 && reports.pop == :invalid
      raise 'capture' unless c.capture(distinct_id: 'c', event: 'ok') && c.flush(timeout: 10)
    end
  end
  # The Puma/Unicorn shape: the client is created (and its flusher-thread
  # callbacks used) in the master; forked workers use that same client, no
  # new one. Each worker's flusher calls back into Ruby (a rejected batch:
  # log line and drop report) and the worker exits normally (at_exit shuts
  # the client down, joining its flusher). ffi < 1.17.1 leaves the workers'
  # callbacks waiting for a callback dispatcher thread that died with the
  # fork: the worker's flusher hung at its first callback and its exit in
  # pthread_join.
  def test_fork_workers_use_the_masters_client
    errors = Queue.new
    c = client(on_error: proc { |s, _| errors << s })
    IngestServer.faults([{ status: 400 }])
    c.capture(distinct_id: 'master', event: 'rejected_in_master')
    assert c.flush
    assert_equal 400, Timeout.timeout(10) { errors.pop }
    3.times do |n|
      rd, wr = IO.pipe
      pid = fork do
        rd.close
        msg = 'OK'
        begin
          IngestServer.faults([{ status: 400 }])
          c.capture(distinct_id: "worker#{n}", event: 'rejected_in_worker')
          raise 'worker flush timed out (flusher stuck in a callback?)' unless c.flush(timeout: 10)
          got = Timeout.timeout(10) { errors.pop }
          raise "worker on_error got #{got.inspect}" unless got == 400
          raise 'second flush' unless c.capture(distinct_id: "worker#{n}", event: 'from_worker') && c.flush(timeout: 10)
        rescue Exception => e # rubocop:disable Lint/RescueException
          msg = "#{e.class}: #{e.message}"
        end
        wr.write(msg)
        wr.close
        # a normal exit: at_exit shuts the client down and joins its flusher
      end
      wr.close
      status = nil
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 40
      while (done = Process.wait(pid, Process::WNOHANG)).nil? &&
            Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
        sleep 0.05
      end
      status = $? if done
      msg = rd.read
      rd.close
      unless done
        Process.kill('KILL', pid)
        Process.wait(pid)
      end
      assert_equal 'OK', msg, "worker #{n}"
      assert done, "worker #{n} did not exit within 40 s (hung in its flusher's callback or pthread_join)"
      assert status.success?, "worker #{n} exit status #{status.inspect}"
    end
    names = events.map { |e| e['event'] }
    assert_equal 3, names.count('from_worker')
    refute_includes names, 'rejected_in_worker'
  end
end
