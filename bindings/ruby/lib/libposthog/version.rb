# frozen_string_literal: true

module LibPostHog
  # Version of the gem. The C library reports its own through
  # LibPostHog.native_version.
  VERSION = '0.1.0'
  # The posthog-ruby release whose API and behaviour the binding follows
  # (PostHog::VERSION under libposthog/compat).
  POSTHOG_RUBY_VERSION = '3.23.2'
end
