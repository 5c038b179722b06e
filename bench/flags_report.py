"""The "flags" section of the benchmark report (issue 10), used by bench/run.py.

Runs RUNS rounds; each round starts a fresh posthog-ingest-server on
127.0.0.1 serving bench/flags_defs.py's definitions on /flags/definitions,
then runs, on the same definitions file:
  ph-bench-flags            libposthog from C: engine and public API rows,
                            capture cost without/with flags
  flags_bench.py posthog    posthog-python (public API and its engine)
  flags_bench.py libposthog libposthog's Python binding with its compiled
                            flags accelerator, and again with
                            LIBPOSTHOG_NO_ACCEL=1 (the ctypes path)
  flags_bench.js            posthog-node
and reports, per workload, the median over the rounds of each client's p50
and p99, the ratios to posthog-python and posthog-node, and the issue's
targets.
"""

import json
import os
import statistics
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = (("rollout", "rollout-only flag"), ("props5", "5 property filters"),
             ("multivariate", "multivariate (3 variants)"), ("cohort", "cohort (OR of 2 ANDs)"),
             ("all100", "all 100 flags"))
# Issue 10's targets.
TARGET_ROLLOUT_NS = 150
TARGET_ALL100_NS = 20000
TARGET_VS_PY_C = 50
TARGET_VS_PY_BINDING = 10


def _post_definitions(url, defs):
    body = json.dumps({"body": defs}).encode()
    req = urllib.request.Request(url + "/_control/flags/definitions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def _med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _ns(v):
    if v is None:
        return "n/a"
    if v >= 1e6:
        return "%.2f ms" % (v / 1e6)
    if v >= 1e4:
        return "%.1f us" % (v / 1e3)
    if v >= 1e3:
        return "%.2f us" % (v / 1e3)
    return "%.0f ns" % v


def _ratio(slow, fast):
    if slow is None or fast is None or fast <= 0:
        return "n/a"
    return "%.0fx" % (slow / fast) if slow / fast >= 10 else "%.1fx" % (slow / fast)


def run_flags(a, Server, run_proc, last_json, log):
    """Returns (markdown, raw dict). a: run.py's arguments (build, python,
    node_modules, runs, tmp, server, timeout)."""
    defs_path = os.path.join(a.tmp, "flags_defs.json")
    rc, _, e, _ = run_proc([sys.executable, os.path.join(HERE, "flags_defs.py"), defs_path])
    if rc != 0:
        return "## Feature flags: local evaluation\n\nn/a (flags_defs.py failed: %s)\n" % e[-300:], {}
    with open(defs_path) as f:
        defs = json.load(f)["definitions"]
    iters_c = getattr(a, "flags_iters", 200000) or 200000
    iters_py, iters_node = 20000, 10000
    ph = os.path.join(a.build, "bench", "ph-bench-flags")
    clients = {
        "c": ([ph, defs_path, "{url}", str(iters_c)], None),
        "python": ([a.python, os.path.join(HERE, "flags_bench.py"), "posthog", defs_path, "{url}",
                    str(iters_py)] if a.python else None, None),
        "py-binding": ([a.python, os.path.join(HERE, "flags_bench.py"), "libposthog", defs_path,
                        "{url}", str(iters_py)] if a.python else None,
                       {k: v for k, v in os.environ.items() if k != "LIBPOSTHOG_NO_ACCEL"}),
        "py-ctypes": ([a.python, os.path.join(HERE, "flags_bench.py"), "libposthog", defs_path,
                       "{url}", str(iters_py)] if a.python else None,
                      dict(os.environ, LIBPOSTHOG_NO_ACCEL="1")),
        "node": (["node", os.path.join(HERE, "flags_bench.js"), defs_path, "{url}",
                  str(iters_node)] if a.node_modules and os.path.isdir(
                      os.path.join(a.node_modules, "posthog-node")) else None,
                 dict(os.environ, BENCH_NODE_MODULES=a.node_modules or "")),
    }
    why = {}
    runs = {k: [] for k in clients}
    if not os.access(ph, os.X_OK):
        why["c"] = "ph-bench-flags not built"
    for r in range(a.runs):
        srv = Server(a.server, a.tmp)
        try:
            _post_definitions(srv.url, defs)
            for key, (argv, env) in clients.items():
                if argv is None:
                    why[key] = "not installed"
                    continue
                if key in why:
                    continue
                argv = [x.replace("{url}", srv.url) for x in argv]
                rc, o, e, _ = run_proc(argv, env=env, timeout=a.timeout, cwd="/")
                res = last_json(o)
                if res and "unsupported" in res:
                    why[key] = res["unsupported"]
                    continue
                if res is None or (rc != 0 and key != "c"):
                    why[key] = "failed (exit %d): %s" % (rc, e.strip()[-300:])
                    continue
                if res.get("undecided"):
                    log("flags %s: %d evaluations not decided locally" % (key, res["undecided"]))
                runs[key].append(res)
                log("flags run %d/%d %-10s %s" % (r + 1, a.runs, key, " ".join(
                    "%s p50 %s" % (w, _ns((res.get("api") or res.get("engine") or {})
                                          .get(w, {}).get("p50_ns"))) for w, _ in WORKLOADS)))
        finally:
            srv.stop()

    def get(key, row, w, field):
        return _med([((x.get(row) or {}).get(w) or {}).get(field) for x in runs[key]])

    L = ["## Feature flags: local evaluation (issue 10)", ""]
    L.append("Same definitions and persons for every client (bench/flags_defs.py: 100 flags, "
             "1024 persons, properties {email, age, plan, country}), served by the local ingest "
             "server and loaded by each client with its secret key; every evaluation local "
             "(only_evaluate_locally, no exposure events). Per call, p50 / p99, median of %d "
             "runs. libposthog from C: the engine (posthog__flags_evaluate / _evaluate_all on the "
             "compiled definitions) and the public API (posthog_get_feature_flag; "
             "posthog_evaluate_flags + posthog_flags_free for all 100; person properties passed "
             "as JSON text). posthog-python %s: get_feature_flag / get_all_flags, and its engine "
             "(Client._compute_flag_locally). posthog-node %s: await getFeatureFlag / getAllFlags."
             % (a.runs, (runs["python"][0]["version"] if runs["python"] else "n/a"),
                (runs["node"][0]["version"] if runs["node"] else "n/a")))
    L.append("")
    cols = [("c", "engine", "C engine"), ("c", "api", "C public API"),
            ("py-binding", "api", "Python binding"),
            ("py-ctypes", "api", "Python binding, ctypes"),
            ("python", "engine", "posthog-python engine"),
            ("python", "api", "posthog-python"), ("node", "api", "posthog-node")]
    L.append("| workload | " + " | ".join(c[2] for c in cols) + " |")
    L.append("|---" * (len(cols) + 1) + "|")
    for w, label in WORKLOADS:
        cells = []
        for key, row, _ in cols:
            if key in why or not runs[key]:
                cells.append("n/a")
            else:
                cells.append("%s / %s" % (_ns(get(key, row, w, "p50_ns")),
                                          _ns(get(key, row, w, "p99_ns"))))
        L.append("| %s | %s |" % (label, " | ".join(cells)))
    L.append("")
    L.append("Ratios (p50; how many times faster than the peer):")
    L.append("")
    L.append("| workload | C engine vs posthog-python engine | C API vs posthog-python | "
             "C API vs posthog-node | Python binding vs posthog-python | "
             "Python binding, ctypes, vs posthog-python |")
    L.append("|---|---|---|---|---|---|")
    for w, label in WORKLOADS:
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            label, _ratio(get("python", "engine", w, "p50_ns"), get("c", "engine", w, "p50_ns")),
            _ratio(get("python", "api", w, "p50_ns"), get("c", "api", w, "p50_ns")),
            _ratio(get("node", "api", w, "p50_ns"), get("c", "api", w, "p50_ns")),
            _ratio(get("python", "api", w, "p50_ns"), get("py-binding", "api", w, "p50_ns")),
            _ratio(get("python", "api", w, "p50_ns"), get("py-ctypes", "api", w, "p50_ns"))))
    L.append("")
    acc = [x.get("accelerator") for x in runs["py-binding"] if x.get("accelerator")]
    if acc:
        L.append("Python binding: flags accelerator %s. Its fixed cost per call (p50, "
                 "get_feature_flag on a disabled client: call and argument checks): %s with "
                 "the accelerator, %s with ctypes; the harness's own floor per timed call: "
                 "%s." % (acc[0], _ns(get("py-binding", "overhead", "disabled", "p50_ns")),
                          _ns(get("py-ctypes", "overhead", "disabled", "p50_ns")),
                          _ns(get("py-binding", "overhead", "floor", "p50_ns"))))
        if not acc[0].startswith("on"):
            L.append("**The Python binding row ran without its accelerator.**")
        L.append("")
    floor = get("c", "engine", "hash_floor", "p50_ns")
    if floor is not None:
        L.append("The C engine's floor for a rollout-only flag: one bucketing hash (portable "
                 "SHA-1 + scaling, posthog__flags_hash) costs %s p50." % _ns(floor))
        L.append("")
    bare = get("c", "api", "rollout_no_props", "p50_ns")
    if bare is not None:
        L.append("The C public API's own cost: %s p50 for the rollout-only flag called without "
                 "person properties (no JSON to parse), against %s with them." % (
                     _ns(bare), _ns(get("c", "api", "rollout", "p50_ns"))))
        L.append("")
    cap_off = get("c", "capture", "without_flags", "p50_ns")
    cap_on = get("c", "capture", "with_flags", "p50_ns")
    cap_off99 = get("c", "capture", "without_flags", "p99_ns")
    cap_on99 = get("c", "capture", "with_flags", "p99_ns")
    L.append("Capture path (posthog_capture_json, p50 / p99): %s / %s without flags, %s / %s with "
             "local evaluation on and definitions loaded." % (_ns(cap_off), _ns(cap_off99),
                                                             _ns(cap_on), _ns(cap_on99)))
    timer = _med([x.get("timer_overhead_ns") for x in runs["c"]])
    if timer is not None:
        L.append("C rows are timed per call with %s; the timer's own cost (%s) is included, not "
                 "subtracted." % (runs["c"][0].get("timer"), _ns(timer)))
    L.append("")
    L.append("Targets (issue 10):")
    L.append("")

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "**not met**")
    roll = get("c", "engine", "rollout", "p50_ns")
    all100 = get("c", "engine", "all100", "p50_ns")
    vs_py = [_safe_div(get("python", "api", w, "p50_ns"), get("c", "api", w, "p50_ns"))
             for w, _ in WORKLOADS]
    vs_py_b = [_safe_div(get("python", "api", w, "p50_ns"), get("py-binding", "api", w, "p50_ns"))
               for w, _ in WORKLOADS]
    L.append("| target | measured | verdict |")
    L.append("|---|---|---|")
    L.append("| rollout-only flag from C <= %d ns (engine p50) | %s | %s |" % (
        TARGET_ROLLOUT_NS, _ns(roll), verdict(None if roll is None else roll <= TARGET_ROLLOUT_NS)))
    L.append("| all 100 flags from C <= %d us (engine p50) | %s | %s |" % (
        TARGET_ALL100_NS // 1000, _ns(all100),
        verdict(None if all100 is None else all100 <= TARGET_ALL100_NS)))
    mn = min([v for v in vs_py if v is not None], default=None)
    L.append("| C >= %dx faster than posthog-python (public APIs, every workload, p50) | "
             "lowest %s | %s |" % (TARGET_VS_PY_C, "n/a" if mn is None else "%.1fx" % mn,
                                   verdict(None if mn is None else mn >= TARGET_VS_PY_C)))
    mnb = min([v for v in vs_py_b if v is not None], default=None)
    L.append("| Python binding >= %dx faster than posthog-python | %s | %s |" % (
        TARGET_VS_PY_BINDING, "n/a (%s)" % why.get("py-binding", "no runs") if mnb is None
        else "lowest %.1fx" % mnb, verdict(None if mnb is None else mnb >= TARGET_VS_PY_BINDING)))
    grow = None if cap_on is None or cap_off is None else cap_on / cap_off
    L.append("| no growth of the capture path's cost (p50 with flags / without) | %s | %s |" % (
        "n/a" if grow is None else "%.2f" % grow,
        verdict(None if grow is None else grow <= 1.2)))
    L.append("")
    for key, w in sorted(why.items()):
        L.append("- %s: n/a (%s)" % (key, w))
    if why:
        L.append("")
    return "\n".join(L) + "\n", {"runs": runs, "why": why}


def _safe_div(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b
