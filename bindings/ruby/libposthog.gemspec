# frozen_string_literal: true

# Build: `gem build libposthog.gemspec` (from bindings/ruby).
#
# At build time the C library is bundled into the gem when one is found:
#   1. ENV['LIBPOSTHOG_PATH']: the .so file, or a directory holding libposthog.so
#   2. ENV['LIBPOSTHOG_BUILD_DIR']: a CMake build dir of libposthog
#   3. the repository's build dir (../../build, relative to this file)
# It is copied to lib/libposthog/native/libposthog.so and the gem becomes a
# platform gem. When none is found (or LIBPOSTHOG_BUNDLE=0) the gem is pure
# Ruby and loads an installed libposthog.so at run time (see README.md).

require_relative 'lib/libposthog/version'

here = __dir__
native_dir = File.join(here, 'lib', 'libposthog', 'native')
bundled = File.join(native_dir, 'libposthog.so')

find_native = lambda do
  cands = []
  if (p = ENV['LIBPOSTHOG_PATH']) && !p.empty?
    cands << (File.directory?(p) ? File.join(p, 'libposthog.so') : p)
  end
  if (d = ENV['LIBPOSTHOG_BUILD_DIR']) && !d.empty?
    cands << File.join(File.expand_path(d, File.expand_path('../..', here)), 'libposthog.so')
  end
  cands << File.expand_path('../../build/libposthog.so', here)
  cands.find { |c| File.file?(c) }
end

bundle = ENV['LIBPOSTHOG_BUNDLE'] != '0'
if bundle && (src = find_native.call)
  require 'fileutils'
  real = File.realpath(src)
  FileUtils.mkdir_p(native_dir)
  unless File.exist?(bundled) && FileUtils.identical?(real, bundled)
    FileUtils.cp(real, bundled)
    File.chmod(0o755, bundled)
  end
elsif !bundle && File.exist?(bundled)
  File.delete(bundled)
end
has_native = File.exist?(bundled)

Gem::Specification.new do |spec|
  spec.name = 'libposthog'
  spec.version = LibPostHog::VERSION
  spec.summary = 'PostHog event capture for Ruby on libposthog (C), a drop-in for posthog-ruby'
  spec.description = 'Ruby binding (ffi) of libposthog, a C11 client for PostHog event ingestion: ' \
                     'lock-free non-blocking capture, a background flusher thread, gzip batches, ' \
                     'retries. API compatible with posthog-ruby\'s event methods.'
  spec.authors = ['libposthog contributors']
  spec.license = 'MIT'
  spec.required_ruby_version = '>= 2.7'
  spec.files = Dir.chdir(here) do
    Dir['lib/**/*.rb'] + %w[README.md libposthog.gemspec] +
      (has_native ? ['lib/libposthog/native/libposthog.so'] : [])
  end
  spec.require_paths = ['lib']
  spec.platform = Gem::Platform.local if has_native
  # ffi 1.16.0 to 1.17.0 cannot call back into Ruby from a forked child's
  # flusher thread (lib/libposthog/native.rb, BROKEN_FORK_FFI)
  spec.add_dependency 'ffi', '>= 1.15', '!= 1.16.0', '!= 1.16.1', '!= 1.16.2', '!= 1.16.3', '!= 1.17.0'
  spec.metadata['bundled_libposthog'] = has_native ? 'true' : 'false'
end
