# frozen_string_literal: true

# What the controllers share: the signed-in user.
class ApplicationController
  attr_reader :current_user

  def initialize(current_user)
    @current_user = current_user
  end
end
