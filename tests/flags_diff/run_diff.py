#!/usr/bin/env python3
"""Differential test of local flag evaluation: libposthog vs posthog-python.

    run_diff.py --eval PATH/flags_diff_eval --workdir DIR [--seed N] [--suites S]
                [--flags F] [--persons P] [--python PY]

1. makes (or reuses) a venv DIR/venv with posthog==7.91.1 from PyPI
   (POSTHOG_PYTHON_VERSION overrides the pin); when PyPI cannot be reached the
   test is skipped: exit 77, which ctest reports as "Skipped";
2. generates the cases with gen_cases.py (seeded, deterministic);
3. evaluates them with libposthog's engine (flags_diff_eval, the internal API)
   and with posthog-python's local evaluation (py_eval.py, in the venv);
4. compares every (case, flag): value, variant, and inconclusive (posthog-python
   raising InconclusiveMatchError or RequiresServerEvaluation against the
   engine's PH_FLAG_INCONCLUSIVE, whatever the cause). Prints each difference
   with the flag's definition and the case, and a summary; exit 1 on any
   difference (or on a crash of either side), 0 when there is none.

What is excluded from the generation and why: gen_cases.EXCLUDED.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_cases  # noqa: E402

SKIP = 77
PIN = os.environ.get("POSTHOG_PYTHON_VERSION", "7.91.1")


def log(msg):
    print("flags_differential: " + msg, flush=True)


def venv_python(workdir, base_python):
    """The venv's python with posthog==PIN, or None (then the test is skipped)."""
    venv = os.path.join(workdir, "venv")
    py = os.path.join(venv, "bin", "python")
    probe = [py, "-c", "import importlib.metadata as m; print(m.version('posthog'))"]
    if os.path.exists(py):
        r = subprocess.run(probe, capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == PIN:
            return py
    else:
        r = subprocess.run([base_python, "-m", "venv", venv], capture_output=True, text=True)
        if r.returncode != 0:
            log("SKIP: cannot create a venv with %s: %s" % (base_python, r.stderr.strip()[-300:]))
            return None
    log("installing posthog==%s from PyPI into %s" % (PIN, venv))
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:
        r = subprocess.run([py, "-m", "pip", "install", "-q", "--timeout", "20", "--retries", "1",
                            "posthog==" + PIN], capture_output=True, text=True, env=env,
                           timeout=600)
    except subprocess.TimeoutExpired:
        log("SKIP: pip install posthog==%s did not finish in 600 s" % PIN)
        return None
    if r.returncode != 0:
        log("SKIP: pip install posthog==%s failed (PyPI unreachable?): %s"
            % (PIN, r.stderr.strip()[-400:]))
        return None
    r = subprocess.run(probe, capture_output=True, text=True)
    if r.returncode != 0 or r.stdout.strip() != PIN:
        log("SKIP: posthog %s does not import in the venv: %s" % (PIN, r.stderr.strip()[-300:]))
        return None
    return py


def run_json(argv, what):
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        log("FAIL: %s exited %d: %s" % (what, r.returncode, r.stderr.strip()[-2000:]))
        return None, 0
    try:
        return json.loads(r.stdout), time.monotonic() - t0
    except ValueError as e:
        log("FAIL: %s printed no JSON (%s): %s" % (what, e, r.stdout[:300]))
        return None, 0


def same(c, p):
    """Whether the engine's result c and posthog-python's p agree."""
    if c.startswith("I:") and p.startswith("I:"):
        return True  # both ask the server (the causes have different names)
    return c == p


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", required=True, help="the flags_diff_eval program")
    ap.add_argument("--emulator", default="",
                    help="'|'-separated command to run it under (a cross build: qemu-user)")
    ap.add_argument("--workdir", required=True, help="where the venv and files go (build dir)")
    ap.add_argument("--python", default=sys.executable, help="python to make the venv with")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FLAGS_DIFF_SEED", "1")))
    ap.add_argument("--suites", type=int, default=8)
    ap.add_argument("--flags", type=int, default=50)
    ap.add_argument("--persons", type=int, default=60)
    ap.add_argument("--show", type=int, default=10, help="differences printed in full")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)

    py = venv_python(a.workdir, a.python)
    if py is None:
        return SKIP

    data = gen_cases.generate(a.seed, a.suites, a.flags, a.persons)
    cases_path = os.path.join(a.workdir, "cases-%d.json" % a.seed)
    with open(cases_path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)

    emu = [w for w in a.emulator.split("|") if w]
    c_res, c_s = run_json(emu + [a.eval, cases_path], "flags_diff_eval")
    p_res, p_s = run_json([py, os.path.join(HERE, "py_eval.py"), cases_path], "py_eval.py")
    if c_res is None or p_res is None:
        return 1

    compared = diffs = 0
    counts = {}
    shown = []
    for si, suite in enumerate(data["suites"]):
        flags = suite["definitions"]["flags"]
        for ci, case in enumerate(suite["cases"]):
            crow, prow = c_res["suites"][si][ci], p_res["suites"][si][ci]
            for fi, flag in enumerate(flags):
                c, p = crow[fi], prow[fi]
                compared += 1
                kind = "I" if c.startswith("I:") else c.split(":")[0]
                counts[kind] = counts.get(kind, 0) + 1
                if same(c, p):
                    continue
                diffs += 1
                if len(shown) < a.show:
                    shown.append((si, ci, flag, case, c, p))
    for si, ci, flag, case, c, p in shown:
        log("DIFFERENCE suite %d case %d flag %s: libposthog %s, posthog-python %s"
            % (si, ci, flag["key"], c, p))
        log("  flag: %s" % json.dumps(flag, ensure_ascii=False))
        log("  case: %s" % json.dumps(case, ensure_ascii=False))
    log("seed %d: %d suites, %d cases, %d flags, %d comparisons (engine: %s); "
        "libposthog %.2f s, posthog-python %s %.2f s"
        % (a.seed, len(data["suites"]), sum(len(s["cases"]) for s in data["suites"]),
           sum(len(s["definitions"]["flags"]) for s in data["suites"]), compared,
           ", ".join("%s %d" % kv for kv in sorted(counts.items())), c_s,
           p_res.get("posthog_version", "?"), p_s))
    log("excluded (server-vs-SDK disagreements, see gen_cases.py):")
    for e in gen_cases.EXCLUDED:
        log("  - " + e)
    if diffs:
        log("FAIL: %d differences in %d comparisons (cases file: %s)" % (diffs, compared, cases_path))
        return 1
    log("%d passed, 0 failed" % compared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
