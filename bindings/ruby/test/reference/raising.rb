# frozen_string_literal: true

# The exceptions the reference scenarios capture. Kept apart from
# scenarios.rb, and short, because the recorded frames name these lines
# (lineno, context_line, pre/post_context): a change here means recording
# the fixtures again (tools/record_ruby_reference.rb).
#
# Each exception is raised in a thread of its own, so its backtrace holds
# only the frames below (not the runner's: the recorder's or minitest's).
module RubyRef
  module Raising
    class PaymentError < StandardError; end

    module_function

    def parse_amount(text)
      Integer(text)
    end

    def charge(text)
      parse_amount(text)
    rescue ArgumentError
      raise PaymentError, "cannot charge #{text.inspect}"
    end

    def nested_failure
      charge('12x')
    end

    def deep_failure(depth)
      return nested_failure if depth.zero?

      deep_failure(depth - 1)
    end

    # The exceptions the scenarios capture (raised and rescued here).
    def chained
      rescued { nested_failure }
    end

    def deep
      rescued { deep_failure(3) }
    end

    # The exception `block` raises, rescued in a new thread.
    def rescued(&block)
      Thread.new do
        block.call
        nil
      rescue StandardError => e
        e
      end.value
    end
  end
end
