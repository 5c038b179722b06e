# frozen_string_literal: true

# A background job (run on a worker thread, as Sidekiq or ActiveJob's async
# adapter would).
class ReportJob
  def perform(user_id, company)
    PostHogClient.capture(distinct_id: user_id, event: 'report generated', properties: { rows: 120, format: 'csv' })
    PostHogClient.group_identify(group_type: 'company', group_key: company, properties: { name: 'Acme', seats: 12 })
  end
end
