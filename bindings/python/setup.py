"""Build hook: bundles the CMake-built libposthog shared library into the package.

Pure Python otherwise (ctypes, no compiled extension). At build time the
library is looked for in:

  1. $LIBPOSTHOG_PATH     the .so file itself, or a directory holding it
  2. $LIBPOSTHOG_BUILD_DIR  a CMake build directory
  3. <repo>/build          the repository's default build directory

and copied to libposthog/_lib/. If none is found the package is built without
it and finds an installed libposthog at run time (see README.md). Set
LIBPOSTHOG_NO_BUNDLE=1 to skip bundling.
"""

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NAMES = ("libposthog.so.0", "libposthog.so", "libposthog.dylib")


def _from_dir(d):
    d = Path(d)
    for n in NAMES:
        p = d / n
        if p.exists():
            return p
    return None


def find_shared_library():
    if os.environ.get("LIBPOSTHOG_NO_BUNDLE"):
        return None
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
    return _from_dir(REPO / "build")


class BuildPyWithLib(build_py):
    def run(self):
        super().run()
        lib = find_shared_library()
        dest = Path(self.build_lib) / "libposthog" / "_lib"
        if dest.exists():
            shutil.rmtree(dest)
        if lib is None:
            self.announce("libposthog: no shared library bundled (found none)", level=2)
            return
        dest.mkdir(parents=True)
        real = lib.resolve()  # follow libposthog.so -> .so.0 -> .so.0.1.0
        shutil.copy2(real, dest / "libposthog.so.0")
        (dest / "SOURCE").write_text(str(real) + "\n")
        self.announce("libposthog: bundled %s" % real, level=2)


class BinaryDistribution(Distribution):
    """The wheel holds a platform-specific .so, so it is not 'pure'."""

    def has_ext_modules(self):
        return bool(find_shared_library())


setup(cmdclass={"build_py": BuildPyWithLib}, distclass=BinaryDistribution)
