# frozen_string_literal: true

module LibPostHog
  # Delivers the C library's drop reports and log lines to the logger,
  # on_error and on_drop from a Ruby thread of its own.
  #
  # The C callbacks run on the library's flusher thread (through the ffi
  # gem's callback dispatcher) or on the capturing thread. They only copy the
  # report and queue it here, so application code (on_error, the logger)
  # never runs on, nor blocks, the flusher, and on_error may call the client
  # (even flush) without deadlocking it.
  #
  # @api private
  class Reporter
    LOG_LEVELS = %i[debug info warn error].freeze

    def initialize(logger, on_error, on_drop)
      @logger = logger
      @on_error = on_error
      @on_drop = on_drop
      reset
    end

    def push_drop(report)
      push([:drop, report])
    end

    def push_log(level, msg)
      push([:log, level, msg])
    end

    # Waits until every queued report has been delivered (not from the
    # reporter thread itself). timeout in seconds, nil: for ever.
    def wait_idle(timeout = nil)
      return true if Thread.current.equal?(@thread)

      check_fork
      deadline = timeout && (monotonic + timeout)
      @mutex.synchronize do
        while @pending.positive?
          left = deadline && (deadline - monotonic)
          return false if left && left <= 0

          @idle.wait(@mutex, left)
        end
      end
      true
    end

    # In a forked child: the reporter thread is gone and the parent's pending
    # reports belong to the parent. Start afresh.
    def after_fork
      reset
    end

    private

    def reset
      @pid = Process.pid
      @mutex = Thread::Mutex.new
      @idle = Thread::ConditionVariable.new
      @queue = Thread::Queue.new
      @pending = 0
      @thread = nil
    end

    def check_fork
      reset if @pid != Process.pid
    end

    def push(item)
      check_fork
      @mutex.synchronize do
        @pending += 1
        @queue << item
        start_thread unless @thread&.alive?
      end
    end

    def start_thread
      q = @queue
      @thread = Thread.new { run(q) }
      @thread.name = 'libposthog-reporter' if @thread.respond_to?(:name=)
      # Never let a reporter thread keep a process from exiting or abort it.
      @thread.report_on_exception = false
    end

    def run(queue)
      loop do
        item = queue.pop
        break if item.nil?

        begin
          deliver(item)
        rescue StandardError => e
          safe_log(:error, "[libposthog] on_error/on_drop raised #{e.class}: #{e.message}")
        ensure
          @mutex.synchronize do
            @pending -= 1
            @idle.broadcast if @pending.zero?
          end
        end
      end
    end

    def deliver(item)
      if item[0] == :log
        level = LOG_LEVELS[item[1]] || :info
        safe_log(level, "[libposthog] #{item[2]}")
        return
      end
      r = item[1]
      if r.reason == :before_send
        # posthog-ruby logs the rejection (done where before_send ran); no on_error.
        @on_drop&.call(r)
        return
      end
      detail = r.message || r.status_message
      where = r.http_status ? " (HTTP #{r.http_status})" : ''
      what = r.event ? " #{r.event}" : ''
      safe_log(:error, "[libposthog] dropped #{r.count} event(s)#{what}: #{r.reason}#{where}: #{detail}")
      @on_error&.call(r.http_status || -1, detail)
      @on_drop&.call(r)
    end

    def safe_log(level, msg)
      @logger.public_send(level, msg)
    rescue StandardError
      nil
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
