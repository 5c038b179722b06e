"""posthog-python, or libposthog's Python binding, on the issue-5 workload.

    python bench_py.py posthog|libposthog URL N default|tuned [KEY=VALUE ...]

KEY=VALUE: extra constructor keyword arguments, passed as strings (e.g.
capture_mode=v1 for posthog-python's capture v1). A keyword the client
refuses (TypeError / ValueError at construction) ends the process with exit
status 3 and ONE JSON line {"unsupported_option": KEY, ...}, which run.py
reports as "n/a (option unsupported)"; so does a capture_mode the client
accepted but does not report back as in effect.

Both packages expose the same client (libposthog's binding is a drop-in for
posthog-python's capture API). Driven by bench/run.py; prints ONE JSON line.
"""

import importlib
import json
import resource
import sys
import time



def _vmhwm_kib():
    """Peak RSS of this process's own address space (VmHWM), KiB; None if unknown.
    ru_maxrss would carry the RSS of the parent that forked us across execve."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None

def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main():
    if len(sys.argv) < 5 or sys.argv[1] not in ("posthog", "libposthog"):
        print("usage: bench_py.py posthog|libposthog URL N default|tuned [KEY=VALUE ...]",
              file=sys.stderr)
        return 2
    modname, url, n, cfg = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    extra = {}
    for kv in sys.argv[5:]:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            print("bench_py.py: extra arguments are KEY=VALUE, got %r" % kv, file=sys.stderr)
            return 2
        extra[k] = v
    mod = importlib.import_module(modname)
    version = getattr(mod, "VERSION", None) or getattr(mod, "__version__", "?")
    kwargs = {"host": url}
    if cfg == "tuned":
        # batches of 1000, a queue that holds all N, gzip on
        kwargs.update(flush_at=1000, max_queue_size=max(n, 10000), gzip=True)
        if modname == "libposthog":
            kwargs.update(max_queue_bytes=max(n * 512, 32 << 20))
    kwargs.update(extra)

    def unsupported(key, why):
        print(json.dumps({"unsupported_option": key, "value": extra.get(key),
                          "status": why, "version": str(version)}), flush=True)
        return 3

    try:
        client = mod.Posthog("phc_bench_key", **kwargs)
    except (TypeError, ValueError) as e:
        bad = [k for k in extra if k in str(e)] or list(extra) or ["?"]
        if not extra:
            raise
        return unsupported(bad[0], "%s: %s" % (type(e).__name__, e))
    # the protocol actually in effect (posthog-python >= 7.x: CaptureMode, a str enum)
    mode = getattr(client, "capture_mode", None)
    mode = getattr(mode, "value", mode)
    if "capture_mode" in extra and (mode is None or str(mode) != extra["capture_mode"]):
        client.shutdown()
        return unsupported("capture_mode", "accepted, but the client reports capture_mode=%r"
                           % (mode,))

    capture = client.capture
    c0 = cpu_s()
    t0 = time.perf_counter()
    for i in range(n):
        capture(
            "bench_event",
            distinct_id="user-%d" % (i % 1000),
            properties={
                "plan": "pro",
                "count": i,
                "ratio": 0.5,
                "flag": True,
                "path": "/checkout/step/2",
                "tags": ["a", "b"],
            },
        )
    t1 = time.perf_counter()
    client.flush(timeout_seconds=600)
    client.shutdown()
    t2 = time.perf_counter()
    c2 = cpu_s()
    out = {
        "client": "posthog-python" if modname == "posthog" else "libposthog-python",
        "version": str(version),
        "config": cfg,
        "opts": ",".join("%s=%s" % kv for kv in extra.items()),
        "capture_mode": None if mode is None else str(mode),
        "n": n,
        "loop_s": t1 - t0,
        "capture_ns": (t1 - t0) * 1e9 / n,
        "e2e_s": t2 - t0,
        "cpu_s": c2 - c0,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "vmhwm_kib": _vmhwm_kib(),
    }
    if modname == "libposthog":
        try:
            out.update({k: v for k, v in client.stats().items()})
        except Exception:  # stats() is an extra of the binding
            pass
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
