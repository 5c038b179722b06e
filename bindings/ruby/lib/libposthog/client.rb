# frozen_string_literal: true

require 'json'
require 'logger'
require 'securerandom'

require 'libposthog/version'
require 'libposthog/utils'
require 'libposthog/native'
require 'libposthog/reporter'
require 'libposthog/flags'

module LibPostHog
  # What on_drop receives: one report of events the library did not deliver.
  #   reason       Symbol, the library's name of the reason: :queue_full,
  #                :invalid, :too_large, :rejected, :retries_exhausted,
  #                :before_send, :shutdown, :storage_full, :expired, :corrupt,
  #                :server_dropped (Native::DROP_REASONS)
  #   status       the C status code (Integer), status_message its text
  #   count        how many events the report covers
  #   http_status  the server's HTTP status when the server decided, else nil
  #   message      human-readable detail
  #   events_json  JSON array of the dropped events (delivery drops), else nil
  #   event, distinct_id  for a single event dropped at capture, else nil
  DropReport = Struct.new(:reason, :status, :status_message, :count, :http_status, :message,
                          :events_json, :event, :distinct_id, keyword_init: true) do
    # The dropped events as an Array of Hashes (delivery drops), else [].
    def events
      events_json ? JSON.parse(events_json) : []
    end
  end

  # The client: posthog-ruby's PostHog::Client API on top of libposthog.
  #
  #   client = LibPostHog::Client.new(api_key: 'phc_...', host: 'https://us.i.posthog.com',
  #                                   on_error: proc { |status, msg| ... })
  #   client.capture(distinct_id: 'user-1', event: 'signed_up', properties: { plan: 'pro' })
  #   client.shutdown
  #
  # Capture methods never raise into the application (errors are logged
  # through the logger and reported to on_error) and never block.
  class Client
    # Feature flags (get_feature_flag, evaluate_flags, ...): lib/libposthog/flags.rb.
    include Flags

    # posthog-ruby's feature-flag options and the libposthog options they set
    # (seconds become milliseconds).
    FLAG_OPTIONS = { personal_api_key: ['secret_key', 1], secret_key: ['secret_key', 1],
                     feature_flags_polling_interval: ['poll_interval_ms', 1000],
                     feature_flag_request_timeout_seconds: ['feature_flags_request_timeout_ms', 1000] }.freeze

    # Native state shared with the C callbacks and the finalizer; it never
    # references the Client, so the Client can be garbage collected.
    # @api private
    class State
      attr_accessor :ptr, :functions, :reporter, :before_send, :test_mode, :test_queue,
                    :logger, :freed, :transport

      def free!
        return if freed || ptr.nil? || ptr.null?

        self.freed = true
        Native.posthog_client_free(ptr)
      end
    end

    def self.finalizer(state)
      proc { state.free! }
    end

    attr_reader :logger

    # @param opts [Hash] posthog-ruby's options (symbol or string keys):
    #   api_key (or ENV POSTHOG_API_KEY; without one the client is created
    #   disabled, with an error logged unless silence_disabled_client_error),
    #   host, batch_size,
    #   max_queue_size, on_error (proc |status, message|), test_mode,
    #   sync_mode, disabled, before_send (proc |event_hash| -> hash or nil),
    #   skip_ssl_verification, logger; plus on_drop (proc |DropReport|),
    #   lib_name, super_properties (Hash), flush_timeout (seconds), is_server
    #   (default true: $is_server on every event, as posthog-ruby), and any
    #   libposthog option key (flush_at, flush_interval_ms, gzip, max_retries,
    #   storage_path, capture_mode, compression, disable_geoip,
    #   historical_migration, default_distinct_id, ...), passed to
    #   posthog_options_set as a string. compress_request (posthog-ruby)
    #   sets gzip and, when the library has it, compression (gzip/none);
    #   capture_compression (posthog-python's name) is compression.
    #   Options the C library does not know are logged and ignored.
    def initialize(opts = {}, **kw)
      opts = symbolize(opts).merge(symbolize(kw))
      normalize_capture_options(opts)
      @logger = opts.delete(:logger) || LibPostHog.logger
      @on_error = opts.delete(:on_error)
      @on_drop = opts.delete(:on_drop)
      @sync_mode = opts.delete(:sync_mode) ? true : false
      @flush_timeout = opts.delete(:flush_timeout)
      test_mode = opts.delete(:test_mode) ? true : false
      before_send = opts.delete(:before_send)
      transport = opts.delete(:transport)
      raise ArgumentError, 'transport must respond to call(request)' if transport && !transport.respond_to?(:call)
      lib_name = opts.delete(:lib_name) || 'posthog-ruby'
      super_props = opts.delete(:super_properties) || {}
      is_server = opts.key?(:is_server) ? opts.delete(:is_server) != false : true

      api_key = opts[:api_key]
      api_key = opts[:api_key] = api_key.strip if api_key.is_a?(String)
      silence = opts.delete(:silence_disabled_client_error)
      no_key = (api_key.nil? || api_key.to_s.empty?) && ENV['POSTHOG_API_KEY'].to_s.strip.empty?

      @state = State.new
      @state.logger = @logger
      @state.test_mode = test_mode
      @state.test_queue = []
      @state.before_send = before_send
      @state.transport = transport
      @state.functions = []
      @state.reporter = Reporter.new(@logger, @on_error, @on_drop)
      @pid = Process.pid

      if no_key
        # posthog-ruby: a client without a key is created disabled (every
        # call returns false / nil), with an error in the log, never raising
        # (a Rails boot without the key set must go on)
        unless silence
          @logger.error('[libposthog] api_key is missing or empty after trimming whitespace; check your ' \
                        'project API key; the client is disabled')
        end
        @state.ptr = nil
        LibPostHog.register(self)
        return
      end

      o = Native.posthog_options_new
      raise NoMemoryError, 'libposthog: posthog_options_new failed' if o.null?

      sdk_props = { '$lib' => lib_name, '$lib_version' => VERSION }
      # posthog-ruby stamps server events so PostHog does not take the
      # server's OS for the user's device; is_server: false for a client/CLI
      sdk_props['$is_server'] = true if is_server
      set_option(o, 'super_properties', Utils.to_json(sdk_props.merge(Utils.jsonable(super_props))))
      @refused = nil
      opts.each { |k, v| apply_option(o, k, v) }
      if @refused
        # never send elsewhere, nor with another key, than asked
        Native.posthog_options_free(o)
        @logger.error("[libposthog] #{@refused}; the client is disabled")
        @state.ptr = nil
        LibPostHog.register(self)
        return
      end
      install_callbacks(o)

      errbuf = FFI::MemoryPointer.new(:char, 512)
      ptr = Native.posthog_client_new(o, errbuf, 512) # takes ownership of o
      if ptr.null?
        @logger.error("[libposthog] cannot create the client: #{errbuf.read_string}")
        @state.ptr = nil
      else
        @state.ptr = ptr
        ObjectSpace.define_finalizer(self, self.class.finalizer(@state))
      end
      LibPostHog.register(self)
    end

    # Captures an event.
    #
    # @param attrs [Hash] distinct_id:, event:, properties: {}, groups: {},
    #   timestamp: (Time/DateTime), uuid: (or message_id:), flags: (a
    #   FeatureFlagEvaluations: its $feature/<key> and $active_feature_flags),
    #   send_feature_flags: (true or posthog-ruby's options Hash: the same from
    #   flags evaluated now), set: / set_once: (person properties sent as top-level $set /
    #   $set_once); per event: disable_geoip: (overrides the client's),
    #   process_person_profile:, cookieless_mode:, disable_skew_correction:
    #   (true/false; nil: not set) and product_tour_id: (String), sent as
    #   $process_person_profile, $cookieless_mode, $ignore_sent_at and
    #   $product_tour_id (capture v0) or in the event's options (v1); the same
    #   keys in properties win. Without distinct_id: the default_distinct_id
    #   option, else a generated id and a personless event.
    # @return [Boolean] whether the event was queued.
    def capture(attrs = {}, **kw)
      guard('capture') { capture_attrs(symbolize(attrs).merge(symbolize(kw)), false) }
    end

    # Like capture, for events that must never be lost (purchases, device
    # boot): returns true only once the event is fsync'ed to the spool
    # (needs storage_path:); blocks for the disk write.
    def capture_durable(attrs = {}, **kw)
      guard('capture_durable') { capture_attrs(symbolize(attrs).merge(symbolize(kw)), true) }
    end

    # Identifies a user: a $identify event with the properties as $set (and,
    # as posthog-ruby does, also as event properties).
    def identify(attrs = {}, **kw)
      guard('identify') do
        a = symbolize(attrs).merge(symbolize(kw))
        return missing_argument('identify', 'distinct_id') if blank?(a[:distinct_id])

        props = hash_arg(a[:properties], 'properties')
        with_shape({ properties: props, '$set': props, '$set_once': a[:set_once] }) do
          enqueue(a, '$identify', props, set: props, set_once: a[:set_once])
        end
      end
    end

    # Links alias: to distinct_id: ($create_alias).
    def alias(attrs = {}, **kw)
      guard('alias') do
        a = symbolize(attrs).merge(symbolize(kw))
        return missing_argument('alias', 'distinct_id') if blank?(a[:distinct_id])
        return missing_argument('alias', 'alias') if blank?(a[:alias])

        with_shape({ properties: { distinct_id: nil, alias: nil } }) do
          enqueue(a, '$create_alias', { 'distinct_id' => a[:distinct_id].to_s, 'alias' => a[:alias].to_s })
        end
      end
    end

    # Sets properties on a group ($groupidentify). distinct_id defaults to
    # "$<group_type>_<group_key>" as in posthog-ruby.
    def group_identify(attrs = {}, **kw)
      guard('group_identify') do
        a = symbolize(attrs).merge(symbolize(kw))
        if blank?(a[:group_type]) || blank?(a[:group_key])
          @logger.error('[libposthog] group_type and group_key must be given')
          return false
        end
        props = hash_arg(a[:properties], 'properties')
        a[:distinct_id] = "$#{a[:group_type]}_#{a[:group_key]}" if blank?(a[:distinct_id])
        with_shape({ properties: { '$group_type': nil, '$group_key': nil, '$group_set': props } }) do
          enqueue(a, '$groupidentify', { '$group_type' => a[:group_type].to_s,
                                         '$group_key' => a[:group_key].to_s,
                                         '$group_set' => props })
        end
      end
    end

    # Captures an exception for error tracking, as posthog-ruby's
    # capture_exception: an $exception event whose $exception_list holds the
    # exception and its cause chain (rescued one first), each with its Ruby
    # backtrace as frames (outermost call first, source context for the
    # application's own files, in_app false for gems and the standard
    # library); see LibPostHog::Exceptions and the README's "Error tracking".
    #
    # @param exception [Exception, String] a String is sent as type "Error"
    # @param distinct_id [String, nil] nil: the default_distinct_id option,
    #   else a generated id and a personless event
    # @param additional_properties [Hash] more properties; its
    #   $exception_list / $exception_level replace the SDK's
    # @param mechanism [Hash, nil] merged into the first exception's
    #   mechanism (e.g. { 'type' => 'rack', 'handled' => false })
    # @param flags a feature-flags snapshot (_get_event_properties), or nil
    # @return [Boolean, nil] whether the event was queued; nil when there is
    #   nothing to capture (not an Exception or a String)
    def capture_exception(exception, distinct_id = nil, additional_properties = {}, flags: nil, mechanism: nil)
      guard('capture_exception') do
        list = Exceptions.exception_list(exception, mechanism: mechanism)
        unless list
          @logger.warn("[libposthog] capture_exception: expected an Exception or a String, got #{exception.class}; " \
                       'nothing captured')
          return nil
        end

        props = {}
        props.merge!(flags._get_event_properties || {}) if flags.respond_to?(:_get_event_properties)
        props.merge!(additional_properties) if additional_properties.is_a?(Hash)
        enqueue({ distinct_id: distinct_id }, '$exception', props, exception_list: list)
      end
    end

    # Like flush, and says what became of the events it waited for:
    # { status: :ok | :undelivered | :timeout, delivered:, dropped:, spooled:,
    #   spool_pending: } (posthog_flush_ex). :undelivered: the flush finished
    # but events were dropped instead of delivered (on_error has them).
    def flush_report(timeout: @flush_timeout)
      return { status: :closed, delivered: 0, dropped: 0, spooled: 0, spool_pending: 0 } unless live?

      ms = timeout.nil? ? -1 : (timeout * 1000).ceil
      r = Native::FlushResult.new
      st = Native.posthog_flush_ex(@state.ptr, ms, r.pointer)
      @state.reporter.wait_idle(timeout)
      status = { Native::OK => :ok, Native::E_UNDELIVERED => :undelivered, Native::E_TIMEOUT => :timeout }
      { status: status.fetch(st, :error), delivered: r[:delivered], dropped: r[:dropped],
        spooled: r[:spooled], spool_pending: r[:spool_pending] }
    rescue StandardError => e
      @logger.error("[libposthog] flush: #{e.class}: #{e.message}")
      { status: :error, delivered: 0, dropped: 0, spooled: 0, spool_pending: 0 }
    end

    # Waits until every event captured so far is delivered or dropped (and
    # their on_error reports delivered). Blocks the calling thread only.
    # True also when events were dropped meanwhile: flush_report tells.
    # @param timeout [Numeric, nil] seconds; nil: the flush_timeout option, else for ever
    # @return [Boolean] false on timeout
    def flush(timeout: @flush_timeout)
      return false unless live?

      ms = timeout.nil? ? -1 : (timeout * 1000).ceil
      st = Native.posthog_flush(@state.ptr, ms)
      @state.reporter.wait_idle(timeout)
      st == Native::OK
    rescue StandardError => e
      @logger.error("[libposthog] flush: #{e.class}: #{e.message}")
      false
    end

    # Flushes (within the C library's shutdown_timeout_ms, or timeout:
    # seconds), then stops the client: later captures are dropped.
    # @return [Boolean] false when events were left behind
    def shutdown(timeout: nil)
      return false unless live?

      ms = timeout.nil? ? -1 : (timeout * 1000).ceil
      st = Native.posthog_shutdown(@state.ptr, ms)
      @state.reporter.wait_idle(timeout || 5)
      st == Native::OK
    rescue StandardError => e
      @logger.error("[libposthog] shutdown: #{e.class}: #{e.message}")
      false
    end

    # sync_mode: waits until the event is delivered, dropped, or safe in the
    # spool (never for the spool to drain: that lasts as long as PostHog is
    # unreachable), and for its reports.
    def sync_wait
      Native.posthog_flush_resolved(@state.ptr, @flush_timeout.nil? ? -1 : (@flush_timeout * 1000).ceil)
      @state.reporter.wait_idle(@flush_timeout)
    end
    private :sync_wait

    # libposthog's counters (see posthog_stats_t), with dropped broken down
    # by reason: { captured:, sent:, requests:, ..., dropped: { queue_full: 0, ... } }
    def stats
      return {} unless live?

      s = Native::Stats.new
      Native.posthog_get_stats(@state.ptr, s.pointer)
      h = %i[captured sent requests retries bytes_raw bytes_sent queue_depth queue_bytes spooled replayed
             spool_bytes spool_pending dropped_total]
          .to_h { |k| [k, s[k]] }
      h[:dropped] = Native::DROP_REASONS.each_with_index.to_h { |r, i| [r, s[:dropped][i]] }
      %i[network_down network_down_periods].each { |k| h[k] = Native.posthog_get_stat(@state.ptr, k.to_s) }
      h
    end

    NETWORK_STATES = { up: 0, down: 1 }.freeze

    # Tells the client the network is :up (back) or :down, e.g. from the
    # OS's connectivity callback. While down it sends nothing and uses up no
    # retries: events wait in memory (on disk with storage_path) and are not
    # lost. Back up, it sends at once, skipping any retry backoff or
    # Retry-After in progress. stats shows :network_down and
    # :network_down_periods.
    # @param state [Symbol] :up or :down
    # @return [Boolean] true when applied
    def set_network_state(state)
      code = NETWORK_STATES[state]
      raise ArgumentError, "set_network_state: #{state.inspect} is not :up or :down" if code.nil?
      return false unless live?

      Native.posthog_set_network_state(@state.ptr, code) == Native::OK
    end

    # test_mode: the events captured so far (Hashes as they would be sent).
    def queued_messages
      @state.test_queue.length
    end

    # test_mode: removes and returns the oldest captured event (like posthog-ruby).
    def dequeue_last_message
      @state.test_queue.shift
    end

    # test_mode: forgets the captured events.
    def clear
      @state.test_queue.clear
    end

    # Remote config payloads (decrypted) are not implemented by libposthog:
    # logs a warning once and returns nil.
    def get_remote_config_payload(*_args, **_kw)
      warn_once(:remote_config, 'get_remote_config_payload is not supported by libposthog (returns nil)')
      nil
    end

    # @api private: called in a forked child (Process._fork hook).
    def _after_fork
      @pid = Process.pid
      @state.reporter.after_fork
    end

    private

    def live?
      LibPostHog.check_fork
      !@state.ptr.nil? && !@state.freed
    end

    def guard(what)
      return false unless live?

      yield
    rescue StandardError => e
      @logger.error("[libposthog] #{what}: #{e.class}: #{e.message}")
      false
    end

    def symbolize(h)
      return {} if h.nil?
      raise ArgumentError, "expected a Hash, got #{h.class}" unless h.is_a?(Hash)

      h.each_with_object({}) { |(k, v), m| m[k.to_sym] = v }
    end

    def hash_arg(v, name)
      return {} if v.nil?
      raise ArgumentError, "#{name} must be a Hash" unless v.is_a?(Hash)

      v
    end

    def blank?(v)
      v.nil? || v.to_s.empty?
    end

    # posthog-ruby raises ArgumentError "<name> must be given"; the binding
    # logs it and refuses the call (nothing is sent).
    def missing_argument(method, name)
      @logger.error("[libposthog] #{method}: #{name} must be given (a non-empty String); nothing sent")
      false
    end

    def uuid_arg(a)
      [a[:uuid], a[:message_id]].each do |u|
        next if u.nil?
        return u.downcase if Utils.valid_uuid?(u)

        @logger.warn("[libposthog] UUID is not valid: #{u}. Ignoring it.")
      end
      nil
    end

    def json_or_nil(v)
      v.nil? ? nil : Utils.to_json(v)
    end

    def capture_attrs(a, durable)
      props = hash_arg(a[:properties], 'properties')
      groups = a[:groups] && hash_arg(a[:groups], 'groups').transform_values { |v| v.nil? ? nil : v.to_s }
      shape = { properties: props, '$set': a[:set], '$set_once': a[:set_once] }
      props = flag_properties(a, groups).merge(props)
      with_shape(shape) do
        enqueue(a, a[:event], props, groups: groups, set: a[:set], set_once: a[:set_once], durable: durable)
      end
    end

    # The shape of the event as the caller gave it, for before_send's key
    # types (Utils.ruby_event); before_send runs on this thread, inside the
    # capture call.
    def with_shape(shape)
      Thread.current[:libposthog_shape] = shape
      yield
    ensure
      Thread.current[:libposthog_shape] = nil
    end

    # capture(flags: snapshot) or send_feature_flags: the $feature/<key> and
    # $active_feature_flags properties (the event's own properties win).
    def flag_properties(a, groups)
      if a[:flags].respond_to?(:_get_event_properties)
        a[:flags]._get_event_properties
      elsif a[:send_feature_flags] && !blank?(a[:distinct_id])
        send_feature_flags_properties(Utils.string(a[:distinct_id]), groups, a[:send_feature_flags])
      else
        {}
      end
    end

    def enqueue(a, event, props, groups: nil, set: nil, set_once: nil, durable: false, exception_list: nil)
      did = a[:distinct_id]
      did = did.nil? ? nil : Utils.string(did)
      props = geoip_override(props, a[:disable_geoip])
      begin
        props_json = Utils.to_json(props)
        set_json = set.nil? ? nil : Utils.to_json(hash_arg(set, 'set'), 'set')
        set_once_json = set_once.nil? ? nil : Utils.to_json(hash_arg(set_once, 'set_once'), 'set_once')
      rescue Utils::UnserializableError, SystemStackError => e
        return refuse_unserializable(event, did, e)
      end
      keep = [] # the C strings live until the call returns
      cstr = lambda do |v|
        next FFI::Pointer::NULL if v.nil?
        raise ArgumentError, 'string contains a NUL byte' if v.include?("\0")

        keep << FFI::MemoryPointer.from_string(v)
        keep.last
      end
      return enqueue_exception(did, props_json, exception_list, cstr) if exception_list

      co = Native::CaptureOptions.new
      co[:timestamp_ms] = Utils.timestamp_ms(a[:timestamp])
      co[:uuid] = cstr.call(uuid_arg(a))
      co[:groups_json] = cstr.call(json_or_nil(groups))
      co[:set_json] = cstr.call(set_json)
      co[:set_once_json] = cstr.call(set_once_json)
      co[:process_person_profile] = Native.tristate(a[:process_person_profile])
      co[:cookieless_mode] = Native.tristate(a[:cookieless_mode])
      co[:disable_skew_correction] = Native.tristate(a[:disable_skew_correction])
      tour = a[:product_tour_id]
      co[:product_tour_id] = cstr.call(tour.nil? || tour.to_s.empty? ? nil : Utils.string(tour))
      fn = durable ? :posthog_capture_durable_opts : :posthog_capture_opts
      st = Native.public_send(fn, @state.ptr, did, event.nil? ? nil : Utils.string(event),
                              props_json, co.pointer, nil)
      captured?(st)
    ensure
      Thread.current[:libposthog_recorded] = nil
    end

    # $exception through posthog_capture_exception_ex: the list as built by
    # Exceptions, the level "error" (unless the properties name one).
    def enqueue_exception(did, props_json, list, cstr)
      eo = Native::ExceptionOptions.new
      begin
        eo[:exception_list_json] = cstr.call(Utils.to_json(list))
      rescue Utils::UnserializableError, SystemStackError => e
        return refuse_unserializable('$exception', did, e)
      end
      eo[:level] = cstr.call('error')
      st = Native.posthog_capture_exception_ex(@state.ptr, did, nil, nil, props_json, eo.pointer, nil)
      captured?(st)
    end

    def captured?(st)
      ok = st == Native::OK
      sync_wait if ok && @sync_mode
      ok || (@state.test_mode && st == Native::E_DROPPED && Thread.current[:libposthog_recorded])
    end

    # A value that cannot become JSON (a Hash that contains itself...): the
    # event is refused, counted as invalid and logged; nothing is raised.
    def refuse_unserializable(event, did, err)
      why = err.is_a?(SystemStackError) ? 'nest too deeply' : "are not serializable: #{err.message}"
      name = event.nil? ? '' : Utils.string(event)
      text = "event #{name.inspect} refused: its values #{why}; pass plain, acyclic data"
      Native.posthog_drop_event(@state.ptr, Native::DROP_INVALID, name, did, text)
      @logger.error("[libposthog] #{text}")
      false
    end

    # A per-call disable_geoip that differs from the client's (the C option
    # disable_geoip) is sent as the $geoip_disable property, which wins over
    # the option; properties that already have it are left alone.
    def geoip_override(props, per_call)
      return props if per_call.nil?

      value = per_call ? true : false
      return props if value == @disable_geoip
      return props if props.key?('$geoip_disable') || props.key?(:$geoip_disable)

      props.merge('$geoip_disable' => value)
    end

    def truthy_option?(v)
      !(v.nil? || v == false || v == 0 || %w[0 false].include?(v.to_s.strip.downcase))
    end

    # posthog-ruby's compress_request and posthog-python's capture_compression
    # as libposthog options; remembers the client's disable_geoip.
    def normalize_capture_options(opts)
      @disable_geoip = truthy_option?(opts[:disable_geoip])
      cc = opts.delete(:capture_compression)
      opts[:compression] = cc if !cc.nil? && !opts.key?(:compression)
      compress = opts.delete(:compress_request)
      return if compress.nil?

      on = truthy_option?(compress)
      opts[:gzip] = on unless opts.key?(:gzip)
      return if opts.key?(:compression)

      # A library without capture v1 has no `compression`: gzip covers it.
      opts[:compression] = on ? 'gzip' : 'none' if Native.option_status('compression', on ? 'gzip' : 'none') == Native::OK
    end

    # Options whose refusal leaves no client instead of one without them:
    # without the given host events would go to the default (US) host,
    # without the given key the library would take ENV['POSTHOG_API_KEY'].
    FATAL_OPTIONS = %w[host api_key].freeze

    def set_option(o, key, value)
      st, why = Native.set_option(o, key, value)
      return true if st == Native::OK

      why = Native.posthog_strerror(st) if why.empty?
      if st == Native::E_UNKNOWN_OPTION
        @logger.warn("[libposthog] option #{key} is not supported by this libposthog build; ignored")
      elsif FATAL_OPTIONS.include?(key.to_s)
        @refused ||= why
      else
        # the library's message names the key, the value (secrets masked) and what is allowed
        @logger.warn("[libposthog] #{why}; ignored")
      end
      false
    end

    def option_string(v)
      case v
      when true then '1'
      when false then '0'
      when Hash, Array then Utils.to_json(v)
      else v.to_s
      end
    end

    def apply_option(o, key, value)
      case key
      when *FLAG_OPTIONS.keys
        name, scale = FLAG_OPTIONS[key]
        unless value.nil?
          v = scale == 1 ? option_string(value) : (value.to_f * scale).round.to_s
          set_option(o, name, v)
        end
      when :batch_size
        set_option(o, 'flush_at', option_string(value))
        set_option(o, 'max_batch_size', option_string(value))
      when :skip_ssl_verification
        set_option(o, 'tls_verify', value ? '0' : '1')
      else
        set_option(o, key.to_s, option_string(value)) unless value.nil?
      end
    end

    def install_callbacks(o)
      state = @state
      reporter = state.reporter

      drop = FFI::Function.new(:void, %i[pointer pointer]) do |info_ptr, _ud|
        begin
          i = Native::DropInfo.new(info_ptr)
          reason = Native.drop_reason(i[:reason])
          if reason == :before_send && Thread.current[:libposthog_recorded]
            nil # test_mode recorded it; not a drop for the application
          else
            rd = ->(p) { p.null? ? nil : p.read_string.force_encoding(Encoding::UTF_8) }
            reporter.push_drop(DropReport.new(
                                 reason: reason, status: i[:status],
                                 status_message: Native.posthog_strerror(i[:status]),
                                 count: i[:count], http_status: i[:http_status].zero? ? nil : i[:http_status],
                                 message: rd.call(i[:message]), events_json: rd.call(i[:events_json]),
                                 event: rd.call(i[:event]), distinct_id: rd.call(i[:distinct_id])
                               ))
          end
        rescue Exception # rubocop:disable Lint/RescueException -- never unwind through C
          nil
        end
      end

      log = FFI::Function.new(:void, %i[int string pointer]) do |level, msg, _ud|
        begin
          reporter.push_log(level, msg)
        rescue Exception # rubocop:disable Lint/RescueException
          nil
        end
      end

      functions = [drop, log]
      Native.posthog_options_set_on_drop(o, drop, nil)
      Native.posthog_options_set_log(o, log, nil)

      if state.before_send || state.test_mode
        bs = FFI::Function.new(:int, %i[pointer pointer pointer]) do |json_ptr, replacement, _ud|
          run_before_send(state, json_ptr, replacement)
        end
        functions << bs
        Native.posthog_options_set_before_send(o, bs, nil)
      end
      if state.transport
        tr = FFI::Function.new(:int, %i[pointer pointer pointer]) do |req_ptr, call, _ud|
          run_transport(state, req_ptr, call)
        end
        functions << tr
        Native.posthog_options_set_transport(o, tr, nil)
      end
      state.functions = functions
    end

    # The transport hook (libposthog extension, transport: proc |request|):
    # request is a Hash {method:, url:, headers: ["Name: value", ...], body:
    # (binary String, nil for GET), timeout: (s), kind: "capture" | "flags" |
    # "flag_definitions"}; the proc returns [status, body, retry_after, etag]
    # (the last two nil when absent) or raises (a transport failure, retried).
    # Runs on the library's threads (the flusher for batches), synchronously.
    def run_transport(state, req_ptr, call)
      r = Native::TransportRequest.new(req_ptr)
      n = r[:header_count]
      headers = n.zero? ? [] : r[:headers].get_array_of_string(0, n)
      body = r[:body].null? ? nil : r[:body].read_bytes(r[:body_len])
      req = { method: r[:method], url: r[:url], headers: headers, body: body,
              timeout: r[:timeout_ms] / 1000.0, kind: r[:kind] }
      status, rbody, retry_after, etag = state.transport.call(req)
      rbody = rbody.to_s.b
      buf = FFI::MemoryPointer.new(:char, [rbody.bytesize, 1].max)
      buf.put_bytes(0, rbody) unless rbody.empty?
      st = Native.posthog_transport_complete(call, Integer(status), retry_after&.to_s, etag&.to_s,
                                             rbody.empty? ? nil : buf, rbody.bytesize)
      state.logger.error("[libposthog] transport answered an invalid status #{status.inspect}") unless st.zero?
      0
    rescue Exception => e # rubocop:disable Lint/RescueException -- never unwind through C
      begin
        Native.posthog_transport_fail(call, "#{e.class}: #{e.message}")
      rescue Exception # rubocop:disable Lint/RescueException
        nil
      end
      0
    end

    # Runs on the capturing thread, inside posthog_capture_opts.
    def run_before_send(state, json_ptr, replacement)
      json = json_ptr.read_string.force_encoding(Encoding::UTF_8)
      event = Utils.ruby_event(JSON.parse(json), Thread.current[:libposthog_shape])
      result = event
      replaced = false
      if state.before_send
        begin
          result = state.before_send.call(event)
          replaced = true
        rescue StandardError => e
          # posthog-ruby 3.23.2: an event whose filter failed is not sent
          # (it may be the one the filter was meant to strip); counted as a
          # before_send drop
          state.logger.error("[libposthog] Error in before_send function - dropping event: #{e.message}")
          return Native::BEFORE_SEND_DROP
        end
        if result.nil?
          state.logger.warn("[libposthog] Event #{event[:event]} was rejected in before_send function")
          return Native::BEFORE_SEND_DROP
        end
        unless result.is_a?(Hash)
          state.logger.error('[libposthog] before_send must return a Hash or nil - using original event')
          result = event
          replaced = false
        end
      end
      if state.test_mode
        state.test_queue << Utils.jsonable(result)
        Thread.current[:libposthog_recorded] = true
        return Native::BEFORE_SEND_DROP
      end
      return Native::BEFORE_SEND_KEEP unless replaced

      # The library copies the text; one it refuses (invalid, a number beyond a
      # double, too deep, no event name...) drops the event as invalid, reported.
      st = Native.posthog_replacement_set(replacement, Utils.to_json(result))
      unless st.zero?
        state.logger.error('[libposthog] before_send returned an event libposthog refuses: ' \
                           "#{Native.posthog_strerror(st)}")
      end
      Native::BEFORE_SEND_REPLACE
    rescue Exception => e # rubocop:disable Lint/RescueException -- never unwind through C
      begin
        state.logger.error("[libposthog] before_send: #{e.class}: #{e.message}")
      rescue Exception # rubocop:disable Lint/RescueException
        nil
      end
      Native::BEFORE_SEND_KEEP
    end

    def warn_once(key, msg)
      @warned ||= {}
      return if @warned[key]

      @warned[key] = true
      @logger.warn("[libposthog] #{msg}")
    end
  end
end
