# frozen_string_literal: true

require 'libposthog'
require_relative 'scenarios'

module RubyRef
  # LibPostHog as a posthog-ruby user would configure it, with the suite's
  # short flush interval and capture v0 (posthog-ruby's endpoint, /batch/).
  class LibPostHogClient < LibPostHog::Client
    def initialize(opts = {}, **kw)
      super({ capture_mode: 'v0', flush_interval_ms: 50, retry_backoff_ms: 10 }.merge(opts).merge(kw))
    end
  end

  LIBPOSTHOG = Sdk.new('libposthog', LibPostHogClient, ->(l) { LibPostHog.logger = l })
end
