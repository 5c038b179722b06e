# frozen_string_literal: true

# config/initializers/posthog.rb, written for posthog-ruby. The Ruby binding's
# test_rails_app.rb runs this app as it is with posthog-ruby (recorded in
# fixtures/posthog-ruby-3.23.2/rails_app.json) and with the `require` line
# below changed to `require 'libposthog/compat'`, nothing else.
require 'posthog'

POSTHOG_ERRORS = Queue.new

PostHogClient = PostHog::Client.new(
  api_key: ENV.fetch('POSTHOG_API_KEY'),
  host: ENV.fetch('POSTHOG_HOST'),
  on_error: proc { |status, msg| POSTHOG_ERRORS << [status, msg] },
  before_send: lambda do |event|
    # never send a password, wherever a controller put one
    event[:properties]&.delete(:password)
    event
  end,
  feature_flag_request_timeout_seconds: 3
)

# posthog-ruby loses what is still queued at exit unless shut down
at_exit { PostHogClient.shutdown }
