# frozen_string_literal: true

require 'ffi'

module LibPostHog
  # Raw FFI bindings of include/posthog/posthog.h. Private: use LibPostHog::Client.
  #
  # Library lookup order (first that loads wins):
  #   1. ENV['LIBPOSTHOG_PATH'] (a file, or a directory holding libposthog.so)
  #   2. the copy bundled into the gem at `gem build` time (lib/libposthog/native/)
  #   3. an installed library through ffi's search: libposthog.so.0, libposthog
  #
  # @api private
  module Native
    extend FFI::Library

    BUNDLED_DIR = File.expand_path('native', __dir__)

    def self.candidates
      list = []
      env = ENV['LIBPOSTHOG_PATH']
      if env && !env.empty?
        list << (File.directory?(env) ? File.join(env, 'libposthog.so') : env)
      end
      bundled = File.join(BUNDLED_DIR, 'libposthog.so')
      list << bundled if File.exist?(bundled)
      # a source gem's build (extension step) lands in the gem's extension
      # dir, which is on the load path
      $LOAD_PATH.each do |dir|
        built = File.join(dir.to_s, 'libposthog', 'native', 'libposthog.so')
        list << built if File.file?(built) && !list.include?(built)
      end
      list << 'libposthog.so.0' << 'posthog'
      list
    end

    errors = []
    loaded = candidates.any? do |cand|
      begin
        ffi_lib cand
        @library_path = cand
        true
      rescue LoadError => e
        errors << e.message
        false
      end
    end
    unless loaded
      raise LoadError, "libposthog: cannot load the C library libposthog.so (tried: #{errors.join('; ')}); " \
                     'reinstall the gem where a C compiler, CMake and the -dev packages are present, ' \
                     'or set LIBPOSTHOG_PATH to a built libposthog.so'
    end

    class << self
      attr_reader :library_path
    end

    OK = 0
    E_TIMEOUT = 8
    E_UNKNOWN_OPTION = 10
    E_BAD_OPTION_VALUE = 11
    E_DISABLED = 13
    E_DROPPED = 14
    E_UNDELIVERED = 20 # posthog_flush_ex: finished, but events were dropped meanwhile
    E_IN_CALLBACK = 21 # flush/shutdown inside a callback of the same client

    DROP_INVALID = 1

    # posthog_tristate_t
    UNSET = 0
    TRUE = 1
    FALSE = 2

    # nil -> UNSET, true/false -> TRUE/FALSE (other values by truthiness).
    def self.tristate(v)
      return UNSET if v.nil?

      v ? TRUE : FALSE
    end

    BEFORE_SEND_KEEP = 0
    BEFORE_SEND_REPLACE = 1
    BEFORE_SEND_DROP = 2

    DROP_REASON_SLOTS = 16 # POSTHOG_DROP_REASON_SLOTS

    # posthog_drop_info_t
    class DropInfo < FFI::Struct
      layout :reason, :int32,
             :status, :int32,
             :count, :uint32,
             :http_status, :int32,
             :message, :pointer,
             :events_json, :pointer,
             :event, :pointer,
             :distinct_id, :pointer
    end

    # posthog_capture_options_t: every field's zero is "not set".
    class CaptureOptions < FFI::Struct
      layout :timestamp_ms, :int64,
             :uuid, :pointer,
             :groups_json, :pointer,
             :set_json, :pointer,
             :set_once_json, :pointer,
             :process_person_profile, :int, # posthog_tristate_t
             :cookieless_mode, :int,
             :disable_skew_correction, :int,
             :product_tour_id, :pointer,
             :flags, :pointer # const posthog_flags_t *: a flags snapshot, or NULL
    end

    # posthog_exception_options_t (zero: every field not set)
    class ExceptionOptions < FFI::Struct
      layout :exception_list_json, :pointer, # the $exception_list the binding built
             :level, :pointer,
             :fingerprint, :pointer,
             :handled, :int, # posthog_tristate_t
             :mechanism_type, :pointer,
             :skip_frames, :int,
             :timestamp_ms, :int64,
             :uuid, :pointer,
             :groups_json, :pointer
    end

    # posthog_stats_t
    class Stats < FFI::Struct
      layout :captured, :uint64,
             :sent, :uint64,
             :requests, :uint64,
             :retries, :uint64,
             :bytes_raw, :uint64,
             :bytes_sent, :uint64,
             :queue_depth, :uint64,
             :queue_bytes, :uint64,
             :spooled, :uint64,
             :replayed, :uint64,
             :spool_bytes, :uint64,
             :spool_pending, :uint64,
             :dropped, [:uint64, DROP_REASON_SLOTS],
             :dropped_total, :uint64
    end

    # posthog_flush_result_t
    class FlushResult < FFI::Struct
      layout :delivered, :uint64,
             :dropped, :uint64,
             :spooled, :uint64,
             :spool_pending, :uint64
    end

    callback :log_fn, %i[int string pointer], :void
    callback :drop_fn, %i[pointer pointer], :void
    callback :before_send_fn, %i[pointer pointer pointer], :int

    # posthog_transport_request_t
    class TransportRequest < FFI::Struct
      layout :method, :string,
             :url, :string,
             :headers, :pointer,
             :header_count, :size_t,
             :body, :pointer,
             :body_len, :size_t,
             :timeout_ms, :uint32,
             :connect_timeout_ms, :uint32,
             :kind, :string
    end
    callback :transport_fn, %i[pointer pointer pointer], :int

    attach_function :posthog_strerror, [:int], :string
    attach_function :posthog_version, [], :string
    attach_function :posthog_drop_reason_name, [:int], :string

    attach_function :posthog_options_new, [], :pointer
    attach_function :posthog_options_set, %i[pointer string string], :int
    attach_function :posthog_options_set_ex, %i[pointer string string pointer size_t], :int
    attach_function :posthog_options_free, [:pointer], :void
    attach_function :posthog_options_set_log, %i[pointer log_fn pointer], :void
    attach_function :posthog_options_set_on_drop, %i[pointer drop_fn pointer], :void
    attach_function :posthog_options_set_before_send, %i[pointer before_send_fn pointer], :void
    # before_send's replacement belongs to the library, which copies the text.
    attach_function :posthog_replacement_set, %i[pointer string], :int
    # the transport hook: every request through a Ruby proc instead of libcurl
    attach_function :posthog_options_set_transport, %i[pointer transport_fn pointer], :void
    attach_function :posthog_transport_complete, %i[pointer int32 string string pointer size_t], :int
    attach_function :posthog_transport_fail, %i[pointer string], :int

    attach_function :posthog_client_new, %i[pointer pointer size_t], :pointer

    # Capture never blocks and never does I/O; drop and before_send
    # callbacks it makes run on the calling (Ruby) thread.
    # (client, distinct_id or NULL, event, properties_json, CaptureOptions*, uuid_out)
    attach_function :posthog_capture_opts, %i[pointer string string string pointer pointer], :int
    # (client, distinct_id, type, message, properties_json, ExceptionOptions*, uuid_out)
    attach_function :posthog_capture_exception_ex, %i[pointer string string string string pointer pointer], :int
    # Durable capture waits for its fsync: it releases the GVL while it does.
    attach_function :posthog_capture_durable_opts, %i[pointer string string string pointer pointer], :int,
                    blocking: true

    # These wait for the flusher thread, whose callbacks need the GVL:
    # they must release it (blocking: true) or they would deadlock.
    attach_function :posthog_flush, %i[pointer int], :int, blocking: true
    attach_function :posthog_flush_ex, %i[pointer int pointer], :int, blocking: true
    # delivered, dropped or on disk (sync_mode): not waiting for the spool to drain
    attach_function :posthog_flush_resolved, %i[pointer int], :int, blocking: true
    attach_function :posthog_drop_event, %i[pointer int string string string], :int
    attach_function :posthog_shutdown, %i[pointer int], :int, blocking: true
    attach_function :posthog_client_free, [:pointer], :void, blocking: true

    attach_function :posthog_get_stats, %i[pointer pointer], :int
    attach_function :posthog_get_stat, %i[pointer string], :uint64
    # posthog_network_state_t: POSTHOG_NETWORK_UP 0, POSTHOG_NETWORK_DOWN 1
    attach_function :posthog_set_network_state, %i[pointer int], :int

    # Every drop reason the library has, by number (:queue_full, :invalid,
    # ..., :server_dropped), from posthog_drop_reason_name: a reason added in
    # C needs no change here.
    DROP_REASONS = (0...DROP_REASON_SLOTS).map { |i| posthog_drop_reason_name(i) }
                                           .take_while { |n| n != 'unknown' }.map(&:to_sym).freeze

    # The name of a drop reason; :unknown_<n> for a number the library does not name.
    def self.drop_reason(i)
      DROP_REASONS[i] || :"unknown_#{i}"
    end

    # posthog_options_set_ex: [status, the library's message naming the key,
    # the value (secrets masked) and what is allowed ('' when OK)].
    def self.set_option(o, key, value)
      err = FFI::MemoryPointer.new(:char, 512)
      st = posthog_options_set_ex(o, key.to_s, value.to_s, err, 512)
      [st, err.read_string.force_encoding(Encoding::UTF_8)]
    end

    # What posthog_options_set answers for key=value on a scratch option set
    # (OK, E_UNKNOWN_OPTION, E_BAD_OPTION_VALUE): whether the loaded library
    # knows an option and takes a value, without making a client.
    def self.option_status(key, value)
      o = posthog_options_new
      raise NoMemoryError, 'libposthog: posthog_options_new failed' if o.null?

      begin
        posthog_options_set(o, key.to_s, value.to_s)
      ensure
        posthog_options_free(o)
      end
    end

    # ffi runs a callback made on a non-Ruby thread (the library's flusher)
    # through its "callback dispatcher", a Ruby thread. A fork loses that
    # thread. ffi < 1.16 resets its dispatcher in the child but only starts a
    # new one when the next FFI::Function is created; until then every
    # callback from the flusher waits for ever (and so does the exit, joining
    # that flusher). ffi >= 1.17.1 restarts it itself at fork. Creating a
    # Function in the child restarts it on the old versions and costs nothing
    # on the new ones. ffi 1.16.0 to 1.17.0 bind each callback to the
    # dispatcher of its creation, which cannot be restarted: the gemspec
    # excludes them (BROKEN_FORK_FFI).
    def self.restart_callback_dispatcher
      @dispatcher_kick = FFI::Function.new(:void, []) {}
    end

    BROKEN_FORK_FFI = %w[1.16.0 1.16.1 1.16.2 1.16.3 1.17.0].freeze
  end
end
