# frozen_string_literal: true

# Gem extension step of a source gem (`gem install libposthog-X.gem`): builds
# the C library from the sources the gem carries (csrc/, copied at
# `gem build`) with CMake, then `make install` puts libposthog.so into the
# gem's extension dir (sitearchdir, which RubyGems points there) as
# libposthog/native/libposthog.so, where
# LibPostHog::Native looks for it. Only the library is built (no tests,
# tools, examples, benchmarks, no Check): a C compiler, CMake >= 3.16 and the
# -dev packages of libcurl, libcjson, zlib, libzstd and libbrotli are needed.
#
# Environment: CMAKE [cmake], LIBPOSTHOG_CMAKE_ARGS (extra CMake arguments,
# e.g. '-DPOSTHOG_WITH_ZSTD=OFF -DPOSTHOG_WITH_BROTLI=OFF'), LIBPOSTHOG_JOBS [2].
# Any failure aborts the install with what was missing.

require 'rbconfig'
require 'shellwords'

def fail_loudly(msg)
  warn "libposthog: #{msg}"
  warn 'libposthog: the gem needs a C compiler, CMake >= 3.16 and the -dev packages of ' \
       'libcurl, libcjson, zlib, libzstd and libbrotli to build the C library'
  exit 1
end

src = File.expand_path('csrc', __dir__)
File.file?(File.join(src, 'CMakeLists.txt')) ||
  fail_loudly("no C sources in #{src} (the gem was built without them)")
cmake = ENV.fetch('CMAKE', 'cmake')
on_path = ENV.fetch('PATH', '').split(File::PATH_SEPARATOR).any? do |d|
  File.executable?(File.join(d, cmake))
end
on_path || File.executable?(cmake) || fail_loudly("'#{cmake}' not found")

build = File.expand_path('cmake-build')
args = [cmake, '-S', src, '-B', build, '-DCMAKE_BUILD_TYPE=Release',
        '-DPOSTHOG_BUILD_TESTS=OFF', '-DPOSTHOG_BUILD_TOOLS=OFF',
        '-DPOSTHOG_BUILD_EXAMPLES=OFF', '-DPOSTHOG_BUILD_BENCH=OFF'] +
       Shellwords.split(ENV.fetch('LIBPOSTHOG_CMAKE_ARGS', ''))
puts "libposthog: #{args.join(' ')}"
system(*args) || fail_loudly("configuring the C library failed: #{args.join(' ')}")

jobs = ENV.fetch('LIBPOSTHOG_JOBS', '2')
File.write('Makefile', <<~MAKE)
  # Written by extconf.rb: builds libposthog with CMake.
  CMAKE = #{cmake.shellescape}
  BUILD = #{build.shellescape}
  sitearchdir = #{RbConfig::CONFIG['sitearchdir'].shellescape}

  all:
  \t$(CMAKE) --build $(BUILD) --target posthog -j #{jobs.to_i.clamp(1, 64)}

  install: all
  \tmkdir -p "$(DESTDIR)$(sitearchdir)/libposthog/native"
  \tcp -L "$(BUILD)/libposthog.so" "$(DESTDIR)$(sitearchdir)/libposthog/native/libposthog.so"

  clean:
  \t-$(CMAKE) --build $(BUILD) --target clean

  .PHONY: all install clean
MAKE
