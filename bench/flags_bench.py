#!/usr/bin/env python3
"""Local feature-flag evaluation with posthog-python or libposthog's Python
binding (issue 10), on bench/flags_defs.py's definitions and persons.

    flags_bench.py posthog|libposthog DEFS.json URL ITERATIONS

URL: a posthog-ingest-server that serves the same definitions on
/flags/definitions (bench/run.py sets it up); the client loads them from
there as in production. Rows (p50/p99 per call, each call timed alone with
perf_counter_ns, over rotating persons):
  api     get_feature_flag(key, distinct_id, person_properties=...,
          only_evaluate_locally=True, send_feature_flag_events=False) for the
          four single-flag workloads; get_all_flags(..., only_evaluate_locally=True)
          for all100 (ITERATIONS/20 calls)
  engine  posthog-python only: Client._compute_flag_locally on the loaded
          definitions (its evaluation engine without the public wrapper)
  overhead  libposthog only: "floor", the harness's own cost per timed call
          (the same closure returning at once), and "disabled", the
          binding's fixed cost (get_feature_flag with the same arguments on
          a disabled client: call, argument checks, no evaluation)
libposthog runs with its compiled flags accelerator when the installed
package has one, unless LIBPOSTHOG_NO_ACCEL=1 (the ctypes path); the line
says which ("accelerator").
Prints ONE JSON line. When the module has no local flag evaluation (the
libposthog binding before its flags API) the line is {"unsupported": why}
and the exit status 3, which run.py reports as n/a.
"""

import importlib
import json
import sys
import time
import warnings

WORKLOADS = ("rollout", "props5", "multivariate", "cohort")


def stats(samples):
    samples.sort()
    n = len(samples)
    return {"p50_ns": float(samples[n // 2]), "p99_ns": float(samples[int(n * 0.99)]),
            "mean_ns": sum(samples) / n, "n": n}


def timed(fn, persons, iters, warm):
    clock = time.perf_counter_ns
    np = len(persons)
    for i in range(warm):
        fn(persons[i % np])
    out = []
    undecided = 0
    for i in range(iters):
        p = persons[i % np]
        t0 = clock()
        v = fn(p)
        t1 = clock()
        out.append(t1 - t0)
        if v is None:
            undecided += 1
    return stats(out), undecided


def overhead(Client, url, persons, iters):
    """The harness's floor and the binding's fixed cost per call (see the
    module doc), timed like the api rows."""
    out = {}

    def floor(p):
        return p["distinct_id"], p["person_properties"], True
    out["floor"], _ = timed(floor, persons, iters, min(iters, 2000))
    off = Client("phc_bench_flags", host=url, disabled=True)
    try:
        def disabled(p):
            off.get_feature_flag("rollout", p["distinct_id"],
                                 person_properties=p["person_properties"],
                                 only_evaluate_locally=True, send_feature_flag_events=False)
            return True
        out["disabled"], _ = timed(disabled, persons, iters, min(iters, 2000))
    finally:
        off.shutdown()
    return out


def unsupported(why):
    print(json.dumps({"unsupported": why}))
    return 3


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("posthog", "libposthog"):
        print("usage: flags_bench.py posthog|libposthog DEFS.json URL ITERATIONS", file=sys.stderr)
        return 2
    modname, defs_path, url, iters = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    warnings.simplefilter("ignore")  # get_feature_flag's deprecation notice, once per call
    with open(defs_path) as f:
        data = json.load(f)
    persons = data["persons"]
    nflags = len(data["definitions"]["flags"])
    mod = importlib.import_module(modname)
    version = getattr(mod, "VERSION", None) or getattr(mod, "__version__", "?")
    Client = getattr(mod, "Client", None) or getattr(mod, "Posthog", None)
    if Client is None or not hasattr(Client, "get_feature_flag"):
        return unsupported("%s %s has no get_feature_flag" % (modname, version))
    kwargs = {"host": url, "send": False} if modname == "posthog" else {"host": url}
    try:
        client = Client("phc_bench_flags", secret_key="phs_bench_flags_secret",
                        poll_interval=3600, **kwargs)
    except TypeError as e:
        return unsupported("%s %s: no local evaluation options (%s)" % (modname, version, e))
    try:
        if hasattr(client, "load_feature_flags"):
            client.load_feature_flags()
        if hasattr(client, "wait_for_flag_definitions"):  # the binding's, in seconds
            client.wait_for_flag_definitions(15)
        # a probe: decided locally, or the client cannot evaluate these definitions
        p0 = persons[0]
        v = client.get_feature_flag("rollout", p0["distinct_id"],
                                    person_properties=p0["person_properties"],
                                    only_evaluate_locally=True, send_feature_flag_events=False)
        if v is None:
            return unsupported("%s %s: definitions not loaded / not evaluated locally"
                               % (modname, version))
        res = {"client": modname, "version": version, "api": {}, "engine": {}, "undecided": 0}
        fl = getattr(mod, "flags", None)
        if modname == "libposthog" and hasattr(fl, "accelerator_status"):
            res["accelerator"] = fl.accelerator_status()
        for w in WORKLOADS:
            def fn(p, w=w):
                return client.get_feature_flag(w, p["distinct_id"],
                                               person_properties=p["person_properties"],
                                               only_evaluate_locally=True,
                                               send_feature_flag_events=False)
            res["api"][w], u = timed(fn, persons, iters, min(iters, 2000))
            res["undecided"] += u
        all_iters = max(iters // 20, 200)

        def fn_all(p):
            r = client.get_all_flags(p["distinct_id"], person_properties=p["person_properties"],
                                     only_evaluate_locally=True)
            return r if r is not None and len(r) == nflags else None
        res["api"]["all100"], u = timed(fn_all, persons, all_iters, 50)
        res["undecided"] += u

        if modname == "libposthog":
            res["overhead"] = overhead(Client, url, persons, iters)

        compute = getattr(client, "_compute_flag_locally", None)
        snap_fn = getattr(client, "_local_evaluation_snapshot", None)
        if compute and snap_fn:
            flags_by_key = snap_fn()["flags_by_key"]

            def props(p):  # what get_feature_flag hands to the engine
                return client._person_properties_for_local_evaluation(p["distinct_id"],
                                                                      p["person_properties"])
            for w in WORKLOADS:
                flag = flags_by_key[w]
                prepared = [(p["distinct_id"], props(p)) for p in persons]

                def fe(pp, flag=flag):
                    return compute(flag, pp[0], person_properties=pp[1])
                res["engine"][w], u = timed(fe, prepared, iters, min(iters, 2000))
                res["undecided"] += u
            all_flags = list(flags_by_key.values())
            prepared = [(p["distinct_id"], props(p)) for p in persons]

            def fe_all(pp):
                return [compute(f, pp[0], person_properties=pp[1]) for f in all_flags]
            res["engine"]["all100"], u = timed(fe_all, prepared, all_iters, 50)
            res["undecided"] += u
        else:
            res["engine"] = None
    finally:
        try:
            client.shutdown()
        except Exception:
            pass
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
