# frozen_string_literal: true

require 'json'

module LibPostHog
  # Error tracking: the $exception_list posthog-ruby (3.23) sends for an
  # exception, built here and handed to posthog_capture_exception_ex
  # (README, "Error tracking"):
  #
  # - one entry per exception, the rescued (outermost) one first, then its
  #   +cause+, the cause's cause... (at most 50; a cycle ends the chain);
  # - each entry { "type" => class name, "value" => message, "mechanism",
  #   "stacktrace" => { "type" => "raw", "frames" } } (stacktrace nil when
  #   the exception has no backtrace: never raised, or a String);
  # - the first entry's mechanism { "type" => "generic", "handled" => true,
  #   "exception_id" => 0 } (merged with the caller's mechanism:), the
  #   others { "type" => "chained", "source" => "cause", "parent_id",
  #   "exception_id" } (keeping the first one's "handled");
  # - frames outermost call first (the first 50 backtrace lines), each
  #   { "filename", "abs_path", "lineno", "function", "in_app", "platform" =>
  #   "ruby" }: filename relative to the project root (Rails.root, else the
  #   working directory) or the file's basename; in_app false for files of
  #   installed gems and the standard library; in_app frames of files that
  #   exist get context_line and up to 5 pre_context / post_context lines.
  #
  # @api private
  module Exceptions
    MAX_CHAIN = 50
    MAX_FRAMES = 50
    CONTEXT = 5
    # A list larger than this as JSON loses its source context (pre/post
    # lines first, then the lines themselves), so that a long cause chain
    # of deep backtraces still fits the library's max_event_bytes (900 KiB
    # by default) instead of the whole error report being dropped as too
    # large.
    MAX_LIST_BYTES = 512 * 1024

    # "path:lineno" with an optional ":in `meth'" / ":in 'Klass#meth'" (the
    # Ruby >= 3.4 form names the class); a Windows drive or JRuby
    # "uri:classloader:" prefix is not part of the path.
    LINE = /\A\s*(?:[a-zA-Z]:|uri:classloader:)?(?<file>[^:]+|<.*>):(?<lineno>\d+)
            (?::in\s[`'](?:(?<owner>[\w:]+)\#)?(?<function>[^']+)')?\z/x.freeze

    module_function

    # @param value [Exception, String] what to capture
    # @param mechanism [Hash, nil] merged into the first entry's mechanism
    # @return [Array<Hash>, nil] nil for anything else (nothing to capture)
    def exception_list(value, mechanism: nil)
      root = { 'type' => 'generic', 'handled' => true }.merge(stringify(mechanism))
      root_dir = project_root
      deps = dependency_roots(root_dir)
      list = []
      seen = {}.compare_by_identity
      current = value
      while current && list.length < MAX_CHAIN && !seen.key?(current)
        entry = entry_for(current, mechanism_at(root, list.length), root_dir, deps)
        break unless entry

        list << entry
        seen[current] = true
        current = current.respond_to?(:cause) ? current.cause : nil
      end
      list.empty? ? nil : fit(list)
    end

    # The list, without source context when it is too large (MAX_LIST_BYTES).
    def fit(list, limit = MAX_LIST_BYTES)
      [%w[pre_context post_context], %w[context_line]].each do |keys|
        break if JSON.generate(list).bytesize <= limit

        list.each do |x|
          (x.dig('stacktrace', 'frames') || []).each { |f| keys.each { |k| f.delete(k) } }
        end
      end
      list
    rescue StandardError
      list
    end

    def mechanism_at(root, index)
      m = root.merge('exception_id' => index)
      return m if index.zero?

      m.merge('type' => 'chained', 'source' => 'cause', 'parent_id' => index - 1)
    end

    def entry_for(value, mechanism, root_dir, deps)
      if value.is_a?(String)
        type = 'Error'
        message = value
        backtrace = nil
      elsif value.respond_to?(:backtrace) && value.respond_to?(:message)
        type = value.class.to_s
        message = value.message
        backtrace = value.backtrace
      else
        return nil
      end
      { 'type' => type, 'value' => message || '', 'mechanism' => mechanism,
        'stacktrace' => stacktrace(backtrace, root_dir, deps) }
    end

    def stacktrace(backtrace, root_dir, deps)
      return nil if backtrace.nil? || backtrace.empty?

      frames = backtrace.first(MAX_FRAMES).filter_map { |line| frame(line, root_dir, deps) }
      { 'type' => 'raw', 'frames' => frames.reverse }
    end

    def frame(line, root_dir, deps)
      m = LINE.match(line.to_s)
      return nil unless m

      file = m[:file]
      lineno = m[:lineno].to_i
      f = { 'filename' => relative_name(file, root_dir), 'abs_path' => file, 'lineno' => lineno,
            'function' => m[:function], 'in_app' => deps.none? { |d| within?(file, d) },
            'platform' => 'ruby' }
      add_context(f, file, lineno) if f['in_app'] && File.exist?(file)
      f
    end

    def project_root
      if defined?(::Rails) && ::Rails.respond_to?(:root) && ::Rails.root
        ::Rails.root.to_s
      else
        Dir.pwd
      end
    rescue StandardError
      Dir.pwd
    end

    # Where installed gems and the standard library live (not the project,
    # even when it is itself a loaded gem).
    def dependency_roots(root_dir = project_root)
      dirs = []
      if defined?(Gem)
        dirs.concat(Gem.path) if Gem.respond_to?(:path)
        dirs << Gem.default_dir if Gem.respond_to?(:default_dir)
        dirs.concat(Gem.loaded_specs.values.map(&:full_gem_path)) if Gem.respond_to?(:loaded_specs)
      end
      dirs << RbConfig::CONFIG['rubylibprefix'] if defined?(RbConfig)
      dirs.compact.reject(&:empty?).uniq - [root_dir]
    rescue StandardError
      []
    end

    def within?(path, dir)
      dir = dir.chomp(File::SEPARATOR)
      path == dir || path.start_with?(dir + File::SEPARATOR)
    end

    def relative_name(path, root_dir)
      if root_dir && !root_dir.empty? && within?(path, root_dir)
        rel = path[root_dir.length..].sub(%r{\A#{Regexp.escape(File::SEPARATOR)}+}, '')
        return rel unless rel.empty?
      end
      File.basename(path)
    end

    def add_context(frame, file, lineno)
      lines = File.readlines(file)
      return if lines.empty? || lineno < 1 || lineno > lines.length

      first = [lineno - CONTEXT, 1].max
      last = [lineno + CONTEXT, lines.length].min
      frame['context_line'] = lines[lineno - 1].chomp
      frame['pre_context'] = lines[(first - 1)...(lineno - 1)].map(&:chomp) if first < lineno
      frame['post_context'] = lines[lineno...last].map(&:chomp) if last > lineno
    rescue StandardError
      nil # unreadable: no context
    end

    def stringify(h)
      return {} unless h.is_a?(Hash)

      h.each_with_object({}) { |(k, v), o| o[k.to_s] = v }
    end
  end
end
