# frozen_string_literal: true

# Build: `gem build libposthog.gemspec` (from bindings/ruby).
#
# Two kinds of gem:
# - a source gem (the default): it carries the C library's sources
#   (ext/libposthog/csrc/, copied from the repository now) and
#   `gem install` builds libposthog.so with CMake in its extension step
#   (ext/libposthog/extconf.rb; needs a C compiler, CMake and the -dev
#   packages of libcurl, libcjson, zlib, libzstd, libbrotli).
# - a platform gem with a prebuilt library bundled, when one is named:
#     1. ENV['LIBPOSTHOG_PATH']: the .so file, or a directory holding libposthog.so
#     2. ENV['LIBPOSTHOG_BUILD_DIR']: a CMake build dir of libposthog
#   It is copied to lib/libposthog/native/libposthog.so; installing that gem
#   compiles nothing.
# LIBPOSTHOG_BUNDLE=0 builds a pure-Ruby gem without either, which loads an
# installed libposthog.so at run time (see README.md).

require_relative 'lib/libposthog/version'
require 'fileutils'

here = __dir__
repo = File.expand_path('../..', here)
native_dir = File.join(here, 'lib', 'libposthog', 'native')
bundled = File.join(native_dir, 'libposthog.so')
csrc = File.join(here, 'ext', 'libposthog', 'csrc')

find_native = lambda do
  if (p = ENV['LIBPOSTHOG_PATH']) && !p.empty?
    c = File.directory?(p) ? File.join(p, 'libposthog.so') : p
    File.file?(c) or raise "LIBPOSTHOG_PATH=#{p}: no libposthog.so there"
    return c
  end
  if (d = ENV['LIBPOSTHOG_BUILD_DIR']) && !d.empty?
    c = File.join(File.expand_path(d, repo), 'libposthog.so')
    File.file?(c) or raise "LIBPOSTHOG_BUILD_DIR=#{d}: no libposthog.so there"
    return c
  end
  nil
end

bundle = ENV['LIBPOSTHOG_BUNDLE'] != '0'
src = bundle ? find_native.call : nil
FileUtils.rm_f(bundled) unless src
if src
  real = File.realpath(src)
  FileUtils.mkdir_p(native_dir)
  unless File.exist?(bundled) && FileUtils.identical?(real, bundled)
    FileUtils.cp(real, bundled)
    File.chmod(0o755, bundled)
  end
elsif bundle && File.file?(File.join(repo, 'CMakeLists.txt')) &&
      File.read(File.join(repo, 'CMakeLists.txt')).include?('project(posthog')
  # in the repository: refresh the C sources the source gem carries
  FileUtils.rm_rf(csrc)
  FileUtils.mkdir_p(csrc)
  %w[CMakeLists.txt cmake pkgconfig include src].each do |n|
    FileUtils.cp_r(File.join(repo, n), csrc) if File.exist?(File.join(repo, n))
  end
end
has_native = File.exist?(bundled)
from_source = !has_native && bundle && File.file?(File.join(csrc, 'CMakeLists.txt'))
bundle && !has_native && !from_source and
  raise 'libposthog.gemspec: neither a libposthog.so to bundle (LIBPOSTHOG_PATH, ' \
        'LIBPOSTHOG_BUILD_DIR) nor the C sources to build one (build the gem in the repository)'

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
      (has_native ? ['lib/libposthog/native/libposthog.so'] : []) +
      (from_source ? ['ext/libposthog/extconf.rb'] + Dir['ext/libposthog/csrc/**/*'].select { |f| File.file?(f) } : [])
  end
  spec.extensions = ['ext/libposthog/extconf.rb'] if from_source
  spec.require_paths = ['lib']
  spec.platform = Gem::Platform.local if has_native
  # ffi 1.16.0 to 1.17.0 cannot call back into Ruby from a forked child's
  # flusher thread (lib/libposthog/native.rb, BROKEN_FORK_FFI)
  spec.add_dependency 'ffi', '>= 1.15', '!= 1.16.0', '!= 1.16.1', '!= 1.16.2', '!= 1.16.3', '!= 1.17.0'
  spec.metadata['bundled_libposthog'] = has_native ? 'true' : 'false'
  spec.metadata['builds_libposthog'] = from_source ? 'true' : 'false'
end
