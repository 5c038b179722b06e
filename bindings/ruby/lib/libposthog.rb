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

    # @api private: runs in a forked child.
    def after_fork_child
      each_live_client(&:_after_fork)
    end
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
