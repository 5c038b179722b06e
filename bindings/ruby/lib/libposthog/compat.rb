# frozen_string_literal: true

# Opt-in: `require 'libposthog/compat'` makes PostHog::Client (and
# PostHog::VERSION-free code written for posthog-ruby) use libposthog, when
# posthog-ruby itself is not loaded.
require 'libposthog'

if defined?(::PostHog)
  warn '[libposthog] PostHog is already defined (posthog-ruby loaded?); libposthog/compat does nothing'
else
  module PostHog
    Client = ::LibPostHog::Client
    Logging = Module.new do
      def self.logger
        ::LibPostHog.logger
      end

      def self.logger=(l)
        ::LibPostHog.logger = l
      end
    end
  end
end
