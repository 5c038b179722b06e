"""Build hook: bundles the libposthog shared library into the package, and
builds the optional flags accelerator.

The binding is ctypes; the wheel carries the platform-specific
libposthog.so, so `pip install ./bindings/python` (or of
an sdist built from it) is the only step. At build time the library is taken
from, in order:

  1. $LIBPOSTHOG_PATH       the .so file itself, or a directory holding it
  2. $LIBPOSTHOG_BUILD_DIR  a CMake build directory of libposthog
  3. a CMake build of the C sources, made here: the repository's
     (../../CMakeLists.txt, for `pip install ./bindings/python`) or the copy
     an sdist carries (csrc/). Tests, tools, examples and benchmarks are off,
     so only a C compiler, CMake and the -dev packages of libcurl, cJSON,
     zlib (and zstd, brotli unless LIBPOSTHOG_CMAKE_ARGS turns them off:
     -DPOSTHOG_WITH_ZSTD=OFF) are needed, not Check.

and copied to libposthog/_lib/. When none of them gives a library the build
fails, naming what was missing; LIBPOSTHOG_NO_BUNDLE=1 builds a package
without the library on purpose (it then loads an installed libposthog at run
time, see README.md). A wheel built once installs on machines without a
compiler (they need the run-time libraries: libcurl, libcjson, zlib, ...).

Environment for the CMake build: CMAKE [cmake], LIBPOSTHOG_CMAKE_ARGS (extra
arguments, split like a shell), LIBPOSTHOG_JOBS [2] (build parallelism).

The accelerator (libposthog._accel, src/libposthog/_accel.c) is a CPython
extension of the feature-flag calls built with the stable ABI
(Py_LIMITED_API 3.10: the wheel is tagged cp310-abi3 and serves every
CPython >= 3.10). It needs a C compiler, the Python headers and
include/posthog/posthog.h (from the repository or the sdist's csrc/); it
does not link against libposthog (flags.py hands it the loaded library's
functions). It is optional: without a compiler, on CPython < 3.10 or other
interpreters, or with LIBPOSTHOG_NO_ACCEL=1, the package is built without it
and the flag calls go through ctypes as before.
"""

import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NAMES = ("libposthog.so.0", "libposthog.so", "libposthog.dylib")
# What the C library's top-level CMake build needs (its tests, tools,
# examples and benchmarks are only added when their folders exist).
C_SOURCES = ("CMakeLists.txt", "cmake", "pkgconfig", "include", "src", "LICENSE")
SDIST_CSRC = HERE / "csrc"


def _from_dir(d):
    d = Path(d)
    for n in NAMES:
        p = d / n
        if p.exists():
            return p
    return None


def _c_source_dir():
    """The C library's sources: an sdist's csrc/, else the repository."""
    for d in (SDIST_CSRC, REPO):
        cm = d / "CMakeLists.txt"
        if cm.is_file() and "project(posthog" in cm.read_text(errors="replace"):
            return d
    return None


def _cmake_build(announce):
    src = _c_source_dir()
    if src is None:
        raise SystemExit(
            "libposthog: no C library to bundle: set LIBPOSTHOG_PATH (a libposthog.so) or "
            "LIBPOSTHOG_BUILD_DIR (a CMake build dir), or build from the libposthog repository "
            "or an sdist of this package (which carry the C sources)"
        )
    cmake = os.environ.get("CMAKE", "cmake")
    if shutil.which(cmake) is None:
        raise SystemExit(
            "libposthog: building the C library needs CMake (>= 3.16), a C compiler and the "
            "-dev packages of libcurl, libcjson, zlib, libzstd, libbrotli; '%s' was not found "
            "(or set LIBPOSTHOG_PATH to a built libposthog.so)" % cmake
        )
    build = Path(tempfile.mkdtemp(prefix="libposthog-cmake-"))
    args = [
        cmake, "-S", str(src), "-B", str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        "-DPOSTHOG_BUILD_TESTS=OFF", "-DPOSTHOG_BUILD_TOOLS=OFF",
        "-DPOSTHOG_BUILD_EXAMPLES=OFF", "-DPOSTHOG_BUILD_BENCH=OFF",
    ] + shlex.split(os.environ.get("LIBPOSTHOG_CMAKE_ARGS", ""))
    jobs = os.environ.get("LIBPOSTHOG_JOBS", "2")
    announce("libposthog: building the C library: " + " ".join(args))
    for cmd in (args, [cmake, "--build", str(build), "--target", "posthog", "-j", jobs]):
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise SystemExit(
                "libposthog: building the C library failed (%s, exit %d):\n%s\n"
                "It needs a C compiler, CMake >= 3.16 and the -dev packages of libcurl, "
                "libcjson, zlib, libzstd and libbrotli (or LIBPOSTHOG_CMAKE_ARGS="
                "'-DPOSTHOG_WITH_ZSTD=OFF -DPOSTHOG_WITH_BROTLI=OFF'); or set LIBPOSTHOG_PATH "
                "to a built libposthog.so" % (" ".join(cmd), r.returncode, r.stdout[-4000:])
            )
    lib = _from_dir(build)
    if lib is None:
        raise SystemExit("libposthog: the CMake build in %s made no libposthog.so" % build)
    return lib, build


def find_shared_library():
    """A prebuilt library named by the environment, or None."""
    env = os.environ.get("LIBPOSTHOG_PATH")
    if env:
        p = Path(env)
        found = _from_dir(p) if p.is_dir() else (p if p.exists() else None)
        if not found:
            raise SystemExit("LIBPOSTHOG_PATH=%s: no libposthog shared library there" % env)
        return found
    bd = os.environ.get("LIBPOSTHOG_BUILD_DIR")
    if bd:
        found = _from_dir(bd)
        if not found:
            raise SystemExit("LIBPOSTHOG_BUILD_DIR=%s: no libposthog shared library there" % bd)
        return found
    return None


def _bundling():
    return not os.environ.get("LIBPOSTHOG_NO_BUNDLE")


class BuildPyWithLib(build_py):
    def run(self):
        super().run()
        dest = Path(self.build_lib) / "libposthog" / "_lib"
        if dest.exists():
            shutil.rmtree(dest)
        if not _bundling():
            self.announce("libposthog: LIBPOSTHOG_NO_BUNDLE set: no library bundled", level=2)
            return
        lib, tmp = find_shared_library(), None
        if lib is None:
            lib, tmp = _cmake_build(lambda m: self.announce(m, level=2))
        try:
            dest.mkdir(parents=True)
            real = lib.resolve()  # follow libposthog.so -> .so.0 -> .so.0.1.0
            shutil.copy2(real, dest / "libposthog.so.0")
            (dest / "SOURCE").write_text(("cmake build of " + str(_c_source_dir()) if tmp
                                          else str(real)) + "\n")
            self.announce("libposthog: bundled %s" % real, level=2)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


class SdistWithCSources(sdist):
    """The sdist carries the C library's sources (csrc/) so that building a
    wheel from it needs no repository."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        src = _c_source_dir()
        if src is None:
            raise SystemExit("libposthog: sdist: the C library's sources were not found")
        out = Path(base_dir) / "csrc"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        for name in C_SOURCES:
            p = src / name
            if p.is_dir():
                shutil.copytree(p, out / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif p.is_file():
                shutil.copy2(p, out / name)


class BinaryDistribution(Distribution):
    """The wheel holds a platform-specific .so, so it is not 'pure'."""

    def has_ext_modules(self):
        return _bundling() or super().has_ext_modules()


# ------------------------------------------------------------------ accelerator

ACCEL_SOURCE = "src/libposthog/_accel.c"
ACCEL_LIMITED_API = (0x030A0000, "cp310")


def _accel_skip_reason():
    """Why the accelerator is not built, or None."""
    if os.environ.get("LIBPOSTHOG_NO_ACCEL", "") not in ("", "0"):
        return "LIBPOSTHOG_NO_ACCEL is set"
    if platform.python_implementation() != "CPython":
        return "not CPython (%s)" % platform.python_implementation()
    if sys.version_info < (3, 10):
        return "CPython %d.%d < 3.10 (its stable ABI lacks what it needs)" % sys.version_info[:2]
    if _accel_include() is None:
        return ("include/posthog/posthog.h not found (not in the repository or an sdist, and "
                "nothing beside $LIBPOSTHOG_BUILD_DIR / $LIBPOSTHOG_PATH)")
    return None


def _accel_include():
    """The directory holding posthog/posthog.h: the sdist's csrc/ or the
    repository, else the sources of $LIBPOSTHOG_BUILD_DIR (its CMake cache
    names them), else the prefix of $LIBPOSTHOG_PATH (<prefix>/lib/.. ->
    <prefix>/include)."""
    dirs = [SDIST_CSRC / "include", REPO / "include"]
    bd = os.environ.get("LIBPOSTHOG_BUILD_DIR")
    if bd:
        try:
            for line in (Path(bd) / "CMakeCache.txt").read_text(errors="replace").splitlines():
                if line.startswith("CMAKE_HOME_DIRECTORY:INTERNAL="):
                    dirs.append(Path(line.split("=", 1)[1]) / "include")
        except OSError:
            pass
    lp = os.environ.get("LIBPOSTHOG_PATH")
    if lp:
        p = Path(lp).resolve()
        dirs.append((p if p.is_dir() else p.parent).parent / "include")
    for d in dirs:
        if (d / "posthog" / "posthog.h").is_file():
            return d
    return None


class BuildExtOptional(build_ext):
    """Builds the accelerator when it can; a failure (no compiler, no Python
    headers) leaves the package without it, with the reason in the log."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001 - any compiler failure
            self.warn("libposthog: the flags accelerator (%s) was not built: %s; the flag "
                      "calls use ctypes" % (ext.name, e))


def _ext_modules():
    why = _accel_skip_reason()
    if why is not None:
        print("libposthog: flags accelerator not built: %s" % why, file=sys.stderr)
        return [], {}
    ext = Extension(
        "libposthog._accel", [ACCEL_SOURCE],
        include_dirs=[str(_accel_include())],
        define_macros=[("Py_LIMITED_API", "0x%08X" % ACCEL_LIMITED_API[0])],
        py_limited_api=True,
    )
    return [ext], {"bdist_wheel": {"py_limited_api": ACCEL_LIMITED_API[1]}}


_exts, _options = _ext_modules()
setup(cmdclass={"build_py": BuildPyWithLib, "sdist": SdistWithCSources,
                "build_ext": BuildExtOptional},
      distclass=BinaryDistribution, ext_modules=_exts, options=_options)
