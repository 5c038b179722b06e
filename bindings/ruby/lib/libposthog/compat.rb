# frozen_string_literal: true

# Opt-in: `require 'libposthog/compat'` makes code written for posthog-ruby
# (PostHog::Client, PostHog::Logging, PostHog::VERSION) use libposthog, when
# posthog-ruby itself is not loaded. PostHog::VERSION is the posthog-ruby
# version whose API this layer follows (LibPostHog::POSTHOG_RUBY_VERSION);
# the binding's own is LibPostHog::VERSION.
require 'libposthog'

if defined?(::PostHog)
  warn '[libposthog] PostHog is already defined (posthog-ruby loaded?); libposthog/compat does nothing'
else
  module PostHog
    Client = ::LibPostHog::Client
    VERSION = ::LibPostHog::POSTHOG_RUBY_VERSION
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
