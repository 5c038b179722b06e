# frozen_string_literal: true

require 'json'

module RubyRef
  # Field-by-field comparison of two scenario results (Hashes as written to
  # the fixtures), and the allow-list of intended differences
  # (allowed_differences.json beside this file: each entry a scenario name
  # or "*", a regexp over the difference's path, what each side has where
  # it matters, and the reason).
  module Compare
    ALLOWED = File.join(__dir__, 'allowed_differences.json')

    Diff = Struct.new(:scenario, :path, :theirs, :ours) do
      def to_s
        "#{scenario}: #{path}: posthog-ruby #{show(theirs)}, libposthog #{show(ours)}"
      end

      def show(v)
        v.equal?(ABSENT) ? '(absent)' : JSON.generate(v)[0, 200]
      end
    end

    ABSENT = Object.new.freeze

    module_function

    # Differences between the reference result (theirs) and ours.
    def diff(scenario, theirs, ours)
      out = []
      walk(scenario, '', keyed(theirs), keyed(ours), out)
      out
    end

    # Calls keyed by their name, events by "name#n" (the n-th event of that
    # name), so one extra or missing item is one difference, not a shift.
    def keyed(result)
      r = result.dup
      r['calls'] = (result['calls'] || []).to_h { |c| [c['call'], c.reject { |k, _| k == 'call' }] }
      count = Hash.new(0)
      r['events'] = (result['events'] || []).to_h do |e|
        name = e['event'].to_s
        key = "#{name}##{count[name]}"
        count[name] += 1
        [key, e]
      end
      r
    end

    def walk(scenario, path, a, b, out)
      if a.is_a?(Hash) && b.is_a?(Hash)
        (a.keys | b.keys).each do |k|
          walk(scenario, "#{path}/#{k}", a.fetch(k, ABSENT), b.fetch(k, ABSENT), out)
        end
      elsif a.is_a?(Array) && b.is_a?(Array) && a.length == b.length
        a.each_index { |i| walk(scenario, "#{path}[#{i}]", a[i], b[i], out) }
      elsif !same?(a, b)
        out << Diff.new(scenario, path, a, b)
      end
    end

    def same?(a, b)
      return a.equal?(b) if a.equal?(ABSENT) || b.equal?(ABSENT)

      a == b && a.class == b.class
    end

    def allowed
      @allowed ||= JSON.parse(File.read(ALLOWED)).map do |e|
        raise "#{ALLOWED}: an entry without a reason: #{e.inspect}" if e['reason'].to_s.strip.empty?

        e.merge('re' => Regexp.new(e.fetch('path')))
      end
    end

    # The entry that allows d, or nil. An entry may pin either side's
    # value ("theirs" / "ours"; "(absent)" for a missing field).
    def allowing(d)
      allowed.find do |e|
        (e['scenario'] == '*' || Array(e['scenario']).include?(d.scenario)) && e['re'].match?(d.path) &&
          (!e.key?('theirs') || pinned(e['theirs']) == d.theirs) &&
          (!e.key?('ours') || pinned(e['ours']) == d.ours)
      end
    end

    def pinned(v)
      v == '(absent)' ? ABSENT : v
    end
  end
end
