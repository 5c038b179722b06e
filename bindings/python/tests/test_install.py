"""A package that cannot load the C library says so at import (the installs
themselves are tested by bindings/python/test_install.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import libposthog


def test_import_without_the_library_warns_loudly(tmp_path):
    # the installed package without its bundled copy, as a pip install that
    # bundled nothing left it
    pkg = tmp_path / "libposthog"
    shutil.copytree(Path(libposthog.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("_lib", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBPOSTHOG")}
    env["PYTHONPATH"] = str(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", "from libposthog import _native; print(_native.candidate_paths())"],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, check=True)
    if probe.stdout.strip() != "[]":
        pytest.skip("a libposthog is installed system-wide: " + probe.stdout.strip())
    code = ("import libposthog\n"
            "c = libposthog.Posthog('phc_x')\n"
            "print('disabled' if c.disabled else 'enabled')\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "disabled"
    assert "RuntimeWarning" in r.stderr, r.stderr
    assert "cannot load the libposthog shared library" in r.stderr
    assert "every libposthog client will be disabled" in r.stderr
    # as an error, under -W error: the import itself fails, naming the cause
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", "import libposthog"],
                       env=env, cwd=str(tmp_path), capture_output=True, text=True)
    assert r.returncode != 0 and "cannot load the libposthog shared library" in r.stderr
