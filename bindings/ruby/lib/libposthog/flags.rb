# frozen_string_literal: true

require 'json'
require 'set'

require 'libposthog/native'

module LibPostHog
  # FFI declarations of the C flags API (posthog.h "feature flags").
  # @api private
  module Native
    # posthog_flags_options_t: every member's zero is "not set".
    class FlagsOptions < FFI::Struct
      layout :person_properties_json, :pointer,
             :groups_json, :pointer,
             :group_properties_json, :pointer,
             :flag_keys, :pointer, # NULL-terminated char*[]
             :device_id, :pointer,
             :disable_geoip, :int, # posthog_tristate_t
             :send_feature_flag_events, :int, # posthog_tristate_t
             :only_evaluate_locally, :int,
             :force_remote, :int
    end

    # posthog_flag_t: the strings belong to the snapshot.
    class Flag < FFI::Struct
      layout :key, :pointer,
             :enabled, :int,
             :variant, :pointer,
             :payload_json, :pointer,
             :reason, :pointer,
             :locally_evaluated, :int,
             :id, :int64,
             :version, :int64
    end

    E_INVALID_ARG = 1

    # These may wait on the network (/flags, the definitions poll): they
    # release the GVL. Reading a flag captures $feature_flag_called, whose
    # before_send and drop callbacks run on the calling thread.
    attach_function :posthog_evaluate_flags, %i[pointer string pointer pointer], :int, blocking: true
    attach_function :posthog_flags_get, %i[pointer string pointer], :int, blocking: true
    attach_function :posthog_flags_peek, %i[pointer string pointer], :int
    attach_function :posthog_flags_count, [:pointer], :size_t
    attach_function :posthog_flags_key, %i[pointer size_t], :pointer
    attach_function :posthog_flags_error, %i[pointer pointer size_t], :pointer
    attach_function :posthog_flags_free, [:pointer], :void
    attach_function :posthog_wait_for_flag_definitions, %i[pointer int], :int, blocking: true
    attach_function :posthog_reload_feature_flags, %i[pointer int], :int, blocking: true
  end

  # posthog-ruby's PostHog::FeatureFlagResult: a flag's value and its payload
  # (parsed JSON), plus the reason the server gave (nil when unknown).
  class FeatureFlagResult
    attr_reader :key, :variant, :payload, :reason

    def initialize(key:, enabled:, variant: nil, payload: nil, reason: nil)
      @key = key
      @enabled = enabled
      @variant = variant
      @payload = payload
      @reason = reason
    end

    # The variant when there is one, else whether the flag is enabled.
    def value
      @variant || @enabled
    end

    def enabled?
      @enabled
    end

    # A payload's JSON text as a Ruby value; the text itself when it is not
    # JSON (as posthog-ruby's parse_payload).
    def self.parse_payload(text)
      return nil if text.nil? || text.empty?

      JSON.parse(text)
    rescue JSON::ParserError
      text
    end
  end

  # A snapshot of the flags of one distinct_id (Client#evaluate_flags), as
  # posthog-ruby's PostHog::FeatureFlagEvaluations. enabled?/get_flag capture
  # $feature_flag_called on the first read of each flag (deduplicated by the C
  # library); get_flag_payload, keys, only and only_accessed are silent. Pass
  # it to capture(flags:) to add $feature/<key> and $active_feature_flags.
  #
  # A view from only/only_accessed answers for its own flags; a flag it left
  # out reads as missing and, unlike posthog-ruby, captures no event.
  class FeatureFlagEvaluations
    Record = Struct.new(:key, :enabled, :variant, :payload, :reason, :locally_evaluated, :id, :version,
                        :payload_json, keyword_init: true) do
      def value
        return false unless enabled

        variant || true
      end
    end

    attr_reader :distinct_id, :groups

    # @api private
    def initialize(snapshot, distinct_id, groups, flags, accessed: nil, view: false)
      @snapshot = snapshot
      @distinct_id = distinct_id
      @groups = groups
      @flags = flags
      @accessed = Set.new(accessed || [])
      @view = view
    end

    def keys
      @flags.keys
    end

    # true when the flag is on; false when off or missing.
    def enabled?(key)
      rec = access(key)
      rec ? rec.enabled : false
    end
    alias is_enabled enabled?

    # The variant, true, false, or nil when the evaluation has no value.
    def get_flag(key)
      rec = access(key)
      rec&.value
    end

    # The flag's payload (parsed JSON) or nil; no event, not an access.
    def get_flag_payload(key)
      @flags[key.to_s]&.payload
    end

    # What went wrong for the whole evaluation, as $feature_flag_error spells
    # it ('' when nothing): libposthog extra.
    def error
      @snapshot.error
    end

    def only_accessed
      clone_with(@flags.slice(*@accessed))
    end

    def only(keys)
      keys = Array(keys).map(&:to_s)
      missing = keys.reject { |k| @flags.key?(k) }
      unless missing.empty?
        @snapshot.logger&.warn('[libposthog] FeatureFlagEvaluations#only was called with flag keys that are ' \
                               "not in the evaluation set and will be dropped: #{missing.join(', ')}")
      end
      clone_with(@flags.slice(*keys))
    end

    # @api private: the properties capture(flags:) adds.
    def _get_event_properties
      props = {}
      active = []
      @flags.each do |key, rec|
        props["$feature/#{key}"] = rec.value
        active << key if rec.enabled
      end
      props['$active_feature_flags'] = active.sort unless active.empty?
      props
    end

    def inspect
      "#<LibPostHog::FeatureFlagEvaluations distinct_id=#{@distinct_id.inspect} flags=#{@flags.size}>"
    end

    private

    def access(key)
      key = key.to_s
      @accessed << key
      rec = @flags[key]
      return nil if rec.nil? && @view

      @snapshot.read(key) # the exposure, through the C snapshot
      rec
    end

    def clone_with(flags)
      self.class.new(@snapshot, @distinct_id, @groups, flags, accessed: @accessed, view: true)
    end
  end

  # Owns one C snapshot; freed (posthog_flags_free) when collected. Holds the
  # client so that the C client outlives it.
  # @api private
  class FlagsSnapshot
    attr_reader :ptr, :error, :logger

    def self.finalizer(ptr)
      proc { Native.posthog_flags_free(ptr) }
    end

    def initialize(ptr, client, logger)
      @ptr = ptr
      @client = client
      @logger = logger
      @error = ''
      return if ptr.nil? || ptr.null?

      buf = FFI::MemoryPointer.new(:char, 256)
      Native.posthog_flags_error(ptr, buf, 256)
      @error = buf.read_string.force_encoding(Encoding::UTF_8)
      ObjectSpace.define_finalizer(self, self.class.finalizer(ptr))
    end

    def empty?
      @ptr.nil? || @ptr.null?
    end

    # Every flag, read without an event.
    def records
      out = {}
      return out if empty?

      f = Native::Flag.new
      Native.posthog_flags_count(@ptr).times do |i|
        kp = Native.posthog_flags_key(@ptr, i)
        next if kp.null?

        key = FlagsSnapshot.str(kp)
        out[key] = FlagsSnapshot.record(f) if Native.posthog_flags_peek(@ptr, key, f.pointer) == 1
      end
      out
    end

    # posthog_flags_get: the record or nil; captures $feature_flag_called when
    # the snapshot sends events.
    def read(key)
      return nil if empty? || !@client.send(:live?)

      f = Native::Flag.new
      Native.posthog_flags_get(@ptr, key, f.pointer) == 1 ? FlagsSnapshot.record(f) : nil
    end

    def self.str(ptr)
      ptr.null? ? nil : ptr.read_string.force_encoding(Encoding::UTF_8)
    end

    def self.record(f)
      FeatureFlagEvaluations::Record.new(
        key: str(f[:key]), enabled: f[:enabled] != 0, variant: str(f[:variant]),
        payload: FeatureFlagResult.parse_payload(str(f[:payload_json])), reason: str(f[:reason]),
        payload_json: str(f[:payload_json]),
        locally_evaluated: f[:locally_evaluated] != 0,
        id: f[:id] >= 0 ? f[:id] : nil, version: f[:version] >= 0 ? f[:version] : nil
      )
    end
  end

  # posthog-ruby's feature-flag methods, mixed into Client. None raises
  # because the server failed: the flag is then unknown (nil) and the reason
  # is logged.
  module Flags
    # How long reload_feature_flags waits for the poll it starts (ms).
    RELOAD_TIMEOUT_MS = 10_000

    # The flag's value for distinct_id: a variant (String), true/false, or
    # nil when it could not be evaluated. Captures $feature_flag_called unless
    # send_feature_flag_events: false (nil: the client's option, on by default).
    def get_feature_flag(key, distinct_id, groups: {}, person_properties: {}, group_properties: {},
                         only_evaluate_locally: false, send_feature_flag_events: nil, disable_geoip: nil)
      found = false
      rec = flag_guard('get_feature_flag') do
        one_flag(key, distinct_id, send_feature_flag_events, true, groups: groups,
                                                                   person_properties: person_properties,
                                                                   group_properties: group_properties,
                                                                   only_evaluate_locally: only_evaluate_locally,
                                                                   disable_geoip: disable_geoip) { |missing| found = missing }
      end
      return rec.value if rec
      return nil if distinct_id.nil? || distinct_id.to_s.empty?

      # posthog-ruby: a flag that an answered evaluation does not know is
      # false; nil only when it could not be evaluated (the server failed,
      # or only_evaluate_locally without its definition)
      found ? false : nil
    end

    # Whether the flag is on (a variant counts), nil when unknown.
    # rubocop:disable Naming/PredicateName -- posthog-ruby's name
    def is_feature_enabled(key, distinct_id, groups: {}, person_properties: {}, group_properties: {},
                           only_evaluate_locally: false, send_feature_flag_events: nil, disable_geoip: nil)
      v = get_feature_flag(key, distinct_id, groups: groups, person_properties: person_properties,
                                             group_properties: group_properties,
                                             only_evaluate_locally: only_evaluate_locally,
                                             send_feature_flag_events: send_feature_flag_events,
                                             disable_geoip: disable_geoip)
      v.nil? ? nil : !!v
    end
    # rubocop:enable Naming/PredicateName

    # A FeatureFlagResult (key, enabled?, variant, payload, reason, value) or
    # nil when the flag could not be evaluated. Captures $feature_flag_called
    # like get_feature_flag.
    def get_feature_flag_result(key, distinct_id, groups: {}, person_properties: {}, group_properties: {},
                                only_evaluate_locally: false, send_feature_flag_events: nil, disable_geoip: nil)
      rec = flag_guard('get_feature_flag_result') do
        one_flag(key, distinct_id, send_feature_flag_events, true, groups: groups,
                                                                   person_properties: person_properties,
                                                                   group_properties: group_properties,
                                                                   only_evaluate_locally: only_evaluate_locally,
                                                                   disable_geoip: disable_geoip)
      end
      return nil unless rec

      FeatureFlagResult.new(key: rec.key, enabled: rec.enabled, variant: rec.variant, payload: rec.payload,
                            reason: rec.reason)
    end

    # The payload (parsed JSON) of the flag's value, or nil; no event. With
    # match_value:, only when the flag has that value (libposthog knows only
    # the payload of the evaluated value).
    def get_feature_flag_payload(key, distinct_id, match_value: nil, groups: {}, person_properties: {},
                                 group_properties: {}, only_evaluate_locally: false, disable_geoip: nil)
      rec = flag_guard('get_feature_flag_payload') do
        one_flag(key, distinct_id, false, false, groups: groups, person_properties: person_properties,
                                                 group_properties: group_properties,
                                                 only_evaluate_locally: only_evaluate_locally,
                                                 disable_geoip: disable_geoip)
      end
      return nil if rec.nil?
      return nil if !match_value.nil? && match_value != rec.value

      rec.payload_json
    end

    # { 'flag' => value } of every flag ({} when none could be evaluated); no event.
    def get_all_flags(distinct_id, groups: {}, person_properties: {}, group_properties: {},
                      only_evaluate_locally: false, disable_geoip: nil, flag_keys: nil)
      get_all_flags_and_payloads(distinct_id, groups: groups, person_properties: person_properties,
                                              group_properties: group_properties,
                                              only_evaluate_locally: only_evaluate_locally,
                                              disable_geoip: disable_geoip, flag_keys: flag_keys)[:featureFlags]
    end

    # { featureFlags: { 'flag' => value }, featureFlagPayloads: { 'flag' => payload } }
    # (payloads parsed, of the enabled flags that have one); no event.
    def get_all_flags_and_payloads(distinct_id, groups: {}, person_properties: {}, group_properties: {},
                                   only_evaluate_locally: false, disable_geoip: nil, flag_keys: nil)
      recs = flag_guard('get_all_flags') do
        evaluate(distinct_id, groups: groups, person_properties: person_properties,
                              group_properties: group_properties, only_evaluate_locally: only_evaluate_locally,
                              disable_geoip: disable_geoip, flag_keys: flag_keys, send_events: false).records
      end || {}
      { featureFlags: recs.transform_values(&:value),
        featureFlagPayloads: recs.select { |_, r| r.enabled && !r.payload_json.nil? }.transform_values(&:payload_json) }
    end

    # Evaluates the flags (all, or flag_keys:) at once, one /flags request
    # at most, into a FeatureFlagEvaluations snapshot. Without a distinct_id
    # (or on a disabled client) the snapshot is empty: no request, no events.
    def evaluate_flags(distinct_id, groups: {}, person_properties: {}, group_properties: {},
                       only_evaluate_locally: false, disable_geoip: nil, flag_keys: nil)
      did = distinct_id.nil? ? nil : Utils.string(distinct_id)
      snap = flag_guard('evaluate_flags') do
        evaluate(did, groups: groups, person_properties: person_properties, group_properties: group_properties,
                      only_evaluate_locally: only_evaluate_locally, disable_geoip: disable_geoip,
                      flag_keys: flag_keys, send_events: nil)
      end
      snap ||= FlagsSnapshot.new(nil, self, @logger)
      FeatureFlagEvaluations.new(snap, did, groups, snap.records)
    end

    # Polls the flag definitions now (local evaluation, with personal_api_key:
    # / secret_key:) and waits for that poll, at most 10 s.
    def reload_feature_flags
      return nil unless live?

      st = Native.posthog_reload_feature_flags(@state.ptr, RELOAD_TIMEOUT_MS)
      if st == Native::E_INVALID_ARG
        @logger.error('[libposthog] You need to specify a personal_api_key to locally evaluate feature flags')
      elsif st != Native::OK
        @logger.warn("[libposthog] the flag definitions could not be loaded (#{Native.posthog_strerror(st)})")
      end
      nil
    end

    # Waits until the flag definitions are loaded (libposthog extra): true
    # when they are; false without a secret key or after timeout seconds.
    def wait_for_flag_definitions(timeout: 10)
      return false unless live?

      ms = timeout.nil? ? -1 : (timeout * 1000).ceil
      Native.posthog_wait_for_flag_definitions(@state.ptr, ms) == Native::OK
    end

    # posthog-ruby's definitions_loaded?: whether local evaluation has its definitions.
    def definitions_loaded?
      live? && Native.posthog_wait_for_flag_definitions(@state.ptr, 0) == Native::OK
    end

    private

    def flag_guard(what)
      return nil unless live?

      yield
    rescue StandardError => e
      @logger.error("[libposthog] #{what}: #{e.class}: #{e.message}")
      nil
    end

    # The flag's record, or nil. A block is told whether a nil comes from an
    # evaluation that succeeded without the flag (the server answered, or
    # local evaluation decided, and the flag is not among them).
    def one_flag(key, distinct_id, send_events, fire, **kw)
      raise ArgumentError, 'flag key must be given' if key.nil? || key.to_s.empty?

      key = key.to_s
      snap = evaluate(distinct_id, flag_keys: [key], send_events: send_events, **kw)
      rec = fire ? snap.read(key) : snap.records[key]
      yield(rec.nil? && !snap.empty? && snap.error.empty? && !kw[:only_evaluate_locally]) if block_given?
      rec
    end

    def flag_json(v, name)
      return nil if v.nil? || (v.respond_to?(:empty?) && v.empty?)
      raise ArgumentError, "#{name} must be a Hash" unless v.is_a?(Hash)

      Utils.to_json(v, name)
    end

    def evaluate(distinct_id, groups: {}, person_properties: {}, group_properties: {}, only_evaluate_locally: false,
                 disable_geoip: nil, flag_keys: nil, send_events: nil)
      keep = []
      cstr = lambda do |v|
        next FFI::Pointer::NULL if v.nil?
        raise ArgumentError, 'string contains a NUL byte' if v.include?("\0")

        keep << FFI::MemoryPointer.from_string(v)
        keep.last
      end
      o = Native::FlagsOptions.new
      o[:person_properties_json] = cstr.call(flag_json(person_properties, 'person_properties'))
      groups = groups.transform_values { |v| v.nil? ? nil : v.to_s } if groups.is_a?(Hash)
      o[:groups_json] = cstr.call(flag_json(groups, 'groups'))
      o[:group_properties_json] = cstr.call(flag_json(with_group_keys(groups, group_properties), 'group_properties'))
      unless flag_keys.nil?
        list = Array(flag_keys).map { |k| cstr.call(k.to_s) }
        arr = FFI::MemoryPointer.new(:pointer, list.size + 1)
        arr.write_array_of_pointer(list + [FFI::Pointer::NULL])
        keep << arr
        o[:flag_keys] = arr
      end
      o[:disable_geoip] = Native.tristate(disable_geoip)
      o[:send_feature_flag_events] = Native.tristate(send_events)
      o[:only_evaluate_locally] = only_evaluate_locally ? 1 : 0
      did = distinct_id.nil? ? nil : Utils.string(distinct_id)
      raise ArgumentError, 'distinct_id contains a NUL byte' if did&.include?("\0")

      out = FFI::MemoryPointer.new(:pointer)
      st = Native.posthog_evaluate_flags(@state.ptr, did, o.pointer, out)
      raise ArgumentError, Native.posthog_strerror(st) unless st == Native::OK

      FlagsSnapshot.new(out.read_pointer, self, @logger)
    end

    # As posthog-ruby: each group's properties start with its $group_key
    # (the caller's own properties win), so flags can match on the key.
    def with_group_keys(groups, group_properties)
      return group_properties unless groups.is_a?(Hash) && !groups.empty?
      raise ArgumentError, 'group_properties must be a Hash' unless group_properties.nil? || group_properties.is_a?(Hash)

      gp = (group_properties || {}).transform_keys(&:to_s)
      out = gp.dup
      groups.each do |name, key|
        next if key.nil?

        own = gp[name.to_s]
        raise ArgumentError, "group_properties[#{name.to_s.inspect}] must be a Hash" unless own.nil? || own.is_a?(Hash)

        out[name.to_s] = { '$group_key' => key }.merge(own || {})
      end
      out
    end

    # capture(send_feature_flags: true | { ... }): $feature/<key> and
    # $active_feature_flags of the flags evaluated now (no events).
    def send_feature_flags_properties(distinct_id, groups, how)
      opts = how.is_a?(Hash) ? how.transform_keys(&:to_sym) : {}
      return {} if opts.key?(:should_send) && !opts[:should_send]

      recs = flag_guard('send_feature_flags') do
        evaluate(distinct_id, groups: groups || {}, person_properties: opts[:person_properties] || {},
                              group_properties: opts[:group_properties] || {},
                              only_evaluate_locally: opts[:only_evaluate_locally] ? true : false,
                              flag_keys: opts[:flag_keys_filter], send_events: false).records
      end || {}
      FeatureFlagEvaluations.new(nil, distinct_id, groups, recs)._get_event_properties
    end
  end
end
