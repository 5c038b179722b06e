# frozen_string_literal: true

require_relative 'application_controller'

# POST /orders
class OrdersController < ApplicationController
  def create(params)
    PostHogClient.identify(distinct_id: current_user[:id],
                           properties: { email: current_user[:email], plan: current_user[:plan] })
    flow = PostHogClient.get_feature_flag('checkout-flow', current_user[:id])
    amount = Integer(params[:amount])
    raise ArgumentError, "amount must be positive, got #{amount}" unless amount.positive?

    PostHogClient.capture(distinct_id: current_user[:id], event: 'order created',
                          properties: { amount: amount, currency: 'EUR', checkout: flow, password: params[:password] },
                          groups: { company: current_user[:company] })
    :created
  rescue ArgumentError => e
    PostHogClient.capture_exception(e, current_user[:id], { '$current_url' => '/orders' })
    :unprocessable_entity
  end
end
