# frozen_string_literal: true

require 'json'
require 'time'
require 'date'
require 'set'

module LibPostHog
  # Conversions from Ruby values to what the C library takes.
  #
  # @api private
  module Utils
    module_function

    UUID_RE = /\A[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}\z/i.freeze
    UTF_8 = Encoding::UTF_8

    # Time → "2024-05-01T10:00:00.123Z" (or with its own offset), as posthog-ruby's
    # time_in_iso8601 does: millisecond precision, "Z" for UTC times.
    def time_in_iso8601(time)
      frac = format('.%06d', time.usec)[0, 4]
      offset = if time.utc?
                 'Z'
               else
                 s = time.utc_offset
                 format('%s%02d:%02d', s.negative? ? '-' : '+', s.abs / 3600, (s.abs % 3600) / 60)
               end
      "#{time.strftime('%Y-%m-%dT%H:%M:%S')}#{frac}#{offset}"
    end

    # Unix epoch milliseconds of a timestamp argument, or 0 (the C library's
    # "now") for nil. Accepts Time, DateTime, Date, an ISO-8601 String and
    # Numeric seconds since the epoch.
    def timestamp_ms(ts)
      t = case ts
          when nil then return 0
          when Time then ts
          when DateTime then ts.to_time
          when Date then ts.to_time
          when String then Time.iso8601(ts)
          when Numeric then time_from_seconds(ts)
          else
            raise ArgumentError, "timestamp must be a Time, not #{ts.class}"
          end
      ms = (t.to_r * 1000).floor
      ms.zero? ? 1 : ms # 0 means "now" to the C library
    end

    # Seconds since the epoch beyond this are milliseconds (or more) given
    # by mistake: 1e11 s is the year 5138.
    MAX_EPOCH_SECONDS = 100_000_000_000

    # A number as a timestamp is seconds since the epoch (Time.at); refused
    # (ArgumentError naming it) when it cannot be one: not finite, zero or
    # negative (1970 or before: an unset value, never meant), or so large it
    # must be milliseconds.
    def time_from_seconds(n)
      unless n.respond_to?(:finite?) ? n.finite? : true
        raise ArgumentError, "timestamp #{n} is not a finite number; give seconds since the epoch or a Time"
      end
      if n <= 0
        raise ArgumentError, "timestamp #{n} is not after 1970-01-01; a number is seconds since the epoch " \
                             '(give a positive number of seconds or a Time)'
      end
      if n >= MAX_EPOCH_SECONDS
        raise ArgumentError, "timestamp #{n} is too large for seconds since the epoch (milliseconds? " \
                             "divide by 1000.0) ; give seconds below #{MAX_EPOCH_SECONDS} or a Time"
      end
      Time.at(n.is_a?(Float) ? Rational(n) : n)
    end

    def string(s)
      s = s.to_s unless s.is_a?(String)
      unless s.encoding == UTF_8
        s = if s.encoding == Encoding::BINARY || s.encoding == Encoding::US_ASCII
              s.dup.force_encoding(UTF_8)
            else
              s.encode(UTF_8, invalid: :replace, undef: :replace)
            end
      end
      s.valid_encoding? ? s : s.scrub
    end

    # A value that cannot become JSON: a Hash/Array that contains itself, or
    # nesting deeper than MAX_DEPTH. The event is refused (and counted).
    class UnserializableError < ArgumentError; end

    # Deeper than any real event, far below what would exhaust the stack.
    MAX_DEPTH = 512

    # A JSON-ready deep copy: string keys, Time/DateTime/Date as ISO-8601
    # strings, non-finite floats as nil, strings as valid UTF-8. Raises
    # UnserializableError for a reference cycle (naming where) or nesting
    # deeper than MAX_DEPTH, instead of a SystemStackError.
    # `walk` (internal): the containers being copied, outermost first.
    def jsonable(v, walk = nil)
      case v
      when Hash, Array, Set then container(v, walk || Walk.new('properties'))
      when String then string(v)
      when Symbol then string(v.to_s)
      when Integer, true, false, nil then v
      when Float then v.finite? ? v : nil
      when Numeric then v.respond_to?(:finite?) && !v.finite? ? nil : v.to_f
      when DateTime then time_in_iso8601(v.to_time)
      when Time then time_in_iso8601(v)
      when Date then v.strftime('%F')
      else
        v.respond_to?(:to_hash) ? jsonable(v.to_hash, walk) : string(v.to_s)
      end
    end

    # The path being copied: the containers on it (to spot a cycle) and the
    # keys that lead there (only turned into text for the error message).
    class Walk
      def initialize(what)
        @what = what
        @ids = {}
        @keys = []
      end

      def enter(v)
        raise UnserializableError, "#{where} refers back to a value that contains it (a reference cycle)" if @ids.key?(v.object_id)
        raise UnserializableError, "#{where} nests deeper than #{MAX_DEPTH} levels" if @ids.size >= MAX_DEPTH

        @ids[v.object_id] = true
      end

      def leave(v)
        @ids.delete(v.object_id)
      end

      def key(k)
        @keys.push(k)
        yield
      ensure
        @keys.pop
      end

      def where
        @what + @keys.map { |k| "[#{k.inspect}]" }.join
      end
    end

    def container(v, walk)
      walk.enter(v)
      begin
        if v.is_a?(Hash)
          v.each_with_object({}) do |(k, x), h|
            h[string(k)] = plain?(x) ? jsonable(x) : walk.key(k) { jsonable(x, walk) }
          end
        else
          v.each_with_index.map { |x, i| plain?(x) ? jsonable(x) : walk.key(i) { jsonable(x, walk) } }
        end
      ensure
        walk.leave(v)
      end
    end

    # Scalars: no container inside, no path to keep.
    def plain?(x)
      x.is_a?(String) || x.is_a?(Symbol) || x.is_a?(Numeric) || x.nil? || x == true || x == false
    end

    # `what` names the value in an UnserializableError ("properties", "set"...).
    def to_json(v, what = 'properties')
      JSON.generate(jsonable(v, Walk.new(what)))
    end

    # The event hash before_send receives, with posthog-ruby's key types:
    # top-level keys are Symbols (:event, :distinct_id, :timestamp,
    # :properties, :$set, ...) except 'uuid', a String as in posthog-ruby;
    # below, a key is a Symbol where the caller's own Hash (template, the
    # shape of the event as the method was given it) had it as a Symbol,
    # else a String (the SDK's '$lib', '$groups', ...). So a filter written
    # for posthog-ruby (`event[:properties].delete(:email)`) finds its keys.
    def ruby_event(parsed, template)
      parsed.each_with_object({}) do |(k, v), out|
        key = k == 'uuid' ? k : k.to_sym
        sub = template.is_a?(Hash) ? template[key] : nil
        out[key] = key == :properties || key.to_s.start_with?('$') ? restore_key_types(v, sub) : v
      end
    end

    # JSON-parsed value with the key types of template (see ruby_event).
    def restore_key_types(value, template)
      case value
      when Hash
        value.each_with_object({}) do |(k, v), out|
          key = k
          sub = nil
          if template.is_a?(Hash)
            if template.key?(k)
              sub = template[k]
            elsif template.key?(k.to_sym)
              key = k.to_sym
              sub = template[key]
            end
          end
          out[key] = restore_key_types(v, sub)
        end
      when Array
        value.each_with_index.map { |v, i| restore_key_types(v, template.is_a?(Array) ? template[i] : nil) }
      else
        value
      end
    end

    def valid_uuid?(u)
      u.is_a?(String) && UUID_RE.match?(u)
    end
  end
end
