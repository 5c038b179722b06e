# frozen_string_literal: true

module LibPostHog
  # Version of the gem. The C library reports its own through
  # LibPostHog.native_version.
  VERSION = '0.1.0'
end
