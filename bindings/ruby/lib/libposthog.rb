# frozen_string_literal: true

require 'logger'
require 'libposthog/version'
require 'libposthog/native'
require 'libposthog/exceptions'
require 'libposthog/client'

# Ruby binding of libposthog, the C client for PostHog event ingestion.
# A drop-in for posthog-ruby's event API: see LibPostHog::Client.
module LibPostHog
  # Prefixes nothing: messages already carry "[libposthog]".
  class << self
    attr_writer :logger

    # The default logger of new clients: Rails.logger under Rails, else a
    # Logger on $stdout (progname PostHog), as posthog-ruby does.
    def logger
      @logger ||= if defined?(::Rails) && ::Rails.respond_to?(:logger) && ::Rails.logger
                    ::Rails.logger
                  else
                    Logger.new($stdout).tap { |l| l.progname = 'PostHog' }
                  end
    end

    # The C library's version string.
    def native_version
      Native.posthog_version
    end

    # @api private
    def register(client)
      LIVE_MUTEX.synchronize { LIVE[client] = true }
    end

    # @api private
    def each_live_client(&block)
      list = LIVE_MUTEX.synchronize { LIVE.keys }
      list.each(&block)
    end

    # @api private: runs in a forked child, from the Process._fork hook, or
    # (Ruby < 3.1) from check_fork at the first call into a client.
    def after_fork_child
      @pid = Process.pid
      # before any client's flusher starts in the child: its callbacks need
      # ffi's callback dispatcher thread (Native.restart_callback_dispatcher)
      Native.restart_callback_dispatcher
      each_live_client(&:_after_fork)
    end

    # @api private: runs after_fork_child once in a process forked without
    # the Process._fork hook.
    def check_fork
      after_fork_child if @pid != Process.pid
    end

    # @api private
    def init_pid
      @pid = Process.pid
    end
  end

  init_pid
  if Native::BROKEN_FORK_FFI.include?(FFI::VERSION)
    warn "libposthog: ffi #{FFI::VERSION} cannot call back into Ruby from a forked child's " \
         'flusher (use ffi 1.15 or >= 1.17.1): clients used after fork may hang'
  end

  LIVE = ObjectSpace::WeakMap.new
  LIVE_MUTEX = Thread::Mutex.new

  # Process._fork hook (Ruby >= 3.1): every fork path (Kernel#fork,
  # Process.fork, IO.popen("-")...) goes through it. The C library already
  # resets its clients in the child (the child forgets the parent's queue
  # and starts its own flusher at its first capture); this resets the Ruby
  # side (the report thread does not survive fork).
  module ForkHook
    def _fork
      pid = super
      LibPostHog.after_fork_child if pid.zero?
      pid
    end
  end
  Process.singleton_class.prepend(ForkHook) if Process.respond_to?(:_fork)

  # Deliver what is queued before the interpreter stops: shut every live
  # client down (within its shutdown_timeout_ms) while Ruby threads still
  # run, so no library callback fires after they are gone. Runs in forked
  # children too (but not after exit!).
  at_exit do
    LibPostHog.each_live_client do |c|
      c.shutdown
    rescue StandardError
      nil
    end
  end
end
