#!/usr/bin/env python3
"""Issue-5 benchmark driver: libposthog vs the official SDKs.

Normally run through tools/bench.sh, which builds everything and installs the
peer SDKs first. Standard library only.

For every (client, config) it runs RUNS separate processes, each against a
fresh `posthog-ingest-server --no-store` on 127.0.0.1, and reports medians:
capture cost (loop wall time / N), end-to-end time (loop start -> flush and
shutdown returned), delivered events/s (server's unique uuids / end-to-end),
events lost (N - unique uuids), process CPU per delivered event (user+sys
inside the process over the same window), peak RSS (ru_maxrss of the child
from wait4), requests and bytes from the server summary. Then: a latency
histogram of single posthog_capture calls (1 and 2 producer threads), the
flusher cost breakdown (ph-bench-flusher, with the zlib and zstd floors) and
the memory bound with the server down. Prints one markdown report and writes
it to --out.

Capture v1 (issue: libposthog v1 with zstd/gzip/none and v0, against the
official SDKs in v1 mode): libposthog rows pass library options through
`ph-bench --opt KEY=VALUE` (capture_mode, compression); a client that refuses
an option (exit 3 + a JSON line naming it) is reported "n/a (option
unsupported: ...)", never faked. Rows that speak v1 run only when the ingest
server answers POST /i/v1/analytics/events with anything but 404 (probed once
at start; --force-v1 skips the probe), otherwise they are n/a with that reason.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import flags_report

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Earlier measurements on this machine quoted by the issue (for context only).
ISSUE_REFERENCE = {
    "posthog-node": "~21k events/s, 56 us CPU/event (tuned)",
    "posthog-python": "13.6k events/s, 82 us CPU/event",
}

CONFIGS = ("default", "tuned")

# libposthog's peak RSS at its defaults today (README, C typed props, default, 200k events,
# medians of 5): the v1 target is "no higher than today".
TODAY_RSS_MIB = 50.0
TODAY_RSS_N = 200000

V1_PATH = "/i/v1/analytics/events"


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ server


class Server:
    """A fresh posthog-ingest-server --no-store on 127.0.0.1."""

    def __init__(self, binary, tmp):
        self.dir = tempfile.mkdtemp(prefix="srv-", dir=tmp)
        pf = os.path.join(self.dir, "port")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--no-store", "--quiet", "--host", "127.0.0.1", "--port-file", pf],
            stdout=subprocess.DEVNULL, stderr=self.err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(pf) and os.path.getsize(pf) > 0:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("ingest server exited at start")
            time.sleep(0.01)
        else:
            self.stop()
            raise RuntimeError("ingest server did not start within 10 s")
        with open(pf) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def summary(self):
        with urllib.request.urlopen(self.url + "/_control/summary", timeout=30) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def closed_port_url():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


# ------------------------------------------------------------------ processes


def run_proc(argv, env=None, timeout=600, cwd=None):
    """Runs argv; returns (exit status, stdout, stderr, rusage from wait4)."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                         cwd=cwd)
    killed = []

    def kill():
        killed.append(1)
        try:
            p.kill()
        except OSError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    o, e = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    out.close()
    err.close()
    if killed:
        e += "\n[killed after %d s]" % timeout
    return p.returncode, o, e, ru


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


# ------------------------------------------------------------------ clients


class Client:
    """A row of the report. v1: speaks capture v1 (runs only when the ingest server
    serves it). opts: what was passed to the client (shown in the report)."""

    def __init__(self, key, label, argv_fn, env=None, available=True, why="", v1=False,
                 opts=""):
        self.key, self.label, self.argv_fn = key, label, argv_fn
        self.env, self.available, self.why = env, available, why
        self.v1, self.opts = v1, opts


# libposthog C rows with explicit protocol options (typed props, like c-typed).
# c-typed / c-json set no protocol option: they run at the library's default
# (today v0 + gzip; v1 + zstd once capture v1 lands in src/).
C_PROTOCOL_ROWS = (
    ("c-v1-zstd", "v1 + zstd", (("capture_mode", "v1"), ("compression", "zstd")), True),
    ("c-v1-gzip", "v1 + gzip", (("capture_mode", "v1"), ("compression", "gzip")), True),
    ("c-v1-none", "v1, uncompressed", (("capture_mode", "v1"), ("compression", "none")), True),
    ("c-v0-gzip", "v0 + gzip", (("capture_mode", "v0"), ("compression", "gzip")), False),
)

CLIENT_KEYS = ("c-typed", "c-json") + tuple(r[0] for r in C_PROTOCOL_ROWS) + (
    "py-binding", "node", "node-v1", "python", "python-v1")


def unsupported_why(res):
    """The n/a reason from a client's {"unsupported_option": ...} line."""
    return "option unsupported: %s=%s (%s)" % (res.get("unsupported_option"), res.get("value"),
                                               res.get("status"))


def make_clients(a):
    ph = os.path.join(a.build, "bench", "ph-bench")
    py = a.python
    node_modules = a.node_modules
    clients = [
        Client("c-typed", "libposthog C, typed props",
               lambda url, n, cfg: [ph, "run", "typed", url, str(n), cfg]),
        Client("c-json", "libposthog C, JSON props",
               lambda url, n, cfg: [ph, "run", "json", url, str(n), cfg]),
    ]
    for key, what, opts, v1 in C_PROTOCOL_ROWS:
        optv = []
        for k, v in opts:
            optv += ["--opt", "%s=%s" % (k, v)]
        # the library's word on the options, before any run (exit 3: refused)
        rc, o, e, _ = run_proc([ph, "checkopts"] + optv, timeout=60)
        res = last_json(o) or {}
        if rc == 0:
            ok, why = True, ""
        elif rc == 3 and "unsupported_option" in res:
            ok, why = False, unsupported_why(res)
        else:
            ok, why = False, "ph-bench checkopts failed (exit %s): %s" % (
                rc, (e.strip().splitlines() or ["?"])[-1])
        clients.append(Client(key, "libposthog C, typed props, %s" % what,
                              (lambda optv: lambda url, n, cfg:
                               [ph, "run", "typed", url, str(n), cfg] + optv)(optv),
                              available=ok, why=why, v1=v1,
                              opts=" ".join("%s=%s" % kv for kv in opts)))
    script = os.path.join(HERE, "python", "bench_py.py")

    def py_ok(mod):
        if not py or not os.path.exists(py):
            return False, "no bench venv"
        rc, o, e, _ = run_proc([py, "-c", "import %s" % mod], cwd="/", timeout=60)
        return rc == 0, (e.strip().splitlines() or ["import failed"])[-1]

    # Peers: the v0 rows pin v0 through the environment (both SDKs also read
    # POSTHOG_CAPTURE_MODE, so a stray value in the caller's environment must not
    # switch them); the v1 rows ask for v1 the way each SDK version offers it.
    base_env = {k: v for k, v in os.environ.items() if k not in (
        "POSTHOG_CAPTURE_MODE", "POSTHOG_CAPTURE_COMPRESSION")}
    ok, why = py_ok("libposthog")
    clients.append(Client("py-binding", "libposthog Python binding",
                          lambda url, n, cfg: [py, script, "libposthog", url, str(n), cfg],
                          env=base_env, available=ok, why=why))
    node_ok = bool(node_modules) and os.path.isdir(os.path.join(node_modules, "posthog-node"))
    node_ok = node_ok and shutil.which("node") is not None
    node_argv = lambda url, n, cfg: ["node", os.path.join(HERE, "node", "bench.js"), url, str(n),
                                     cfg]
    env = dict(base_env, BENCH_NODE_MODULES=node_modules or "")
    clients.append(Client("node", "posthog-node", node_argv, env=env, available=node_ok,
                          why="posthog-node not installed"))
    # posthog-node 5.x: v1 only through the environment (src/capture-v1/config.ts,
    # resolveCaptureMode); no constructor option.
    clients.append(Client("node-v1", "posthog-node, capture v1", node_argv,
                          env=dict(env, POSTHOG_CAPTURE_MODE="v1"), available=node_ok,
                          why="posthog-node not installed", v1=True,
                          opts="POSTHOG_CAPTURE_MODE=v1"))
    ok, why = py_ok("posthog")
    clients.append(Client("python", "posthog-python",
                          lambda url, n, cfg: [py, script, "posthog", url, str(n), cfg],
                          env=base_env, available=ok, why=why))
    # posthog-python 7.x: Client(capture_mode="v1") (posthog/capture_mode.py). Its v1
    # compression follows the gzip flag (capture_compression unset): none at the
    # default config, gzip in tuned, as in the v0 rows.
    clients.append(Client("python-v1", "posthog-python, capture v1",
                          lambda url, n, cfg: [py, script, "posthog", url, str(n), cfg,
                                               "capture_mode=v1"],
                          env=base_env, available=ok, why=why, v1=True,
                          opts='capture_mode="v1"'))
    return clients


def probe_v1(a):
    """Whether the ingest server serves capture v1: (True, "") or (False, why)."""
    srv = Server(a.server, a.tmp)
    try:
        req = urllib.request.Request(
            srv.url + V1_PATH, data=b"{}", method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": "Bearer phc_bench_key"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except (urllib.error.URLError, OSError) as e:
            return False, "v1 probe of the ingest server failed: %s" % e
    finally:
        srv.stop()
    if code == 404:
        return False, "ingest server has no capture v1 endpoint (POST %s: 404)" % V1_PATH
    return True, "POST %s with an empty object: %d" % (V1_PATH, code)


def one_run(a, client, cfg):
    srv = Server(a.server, a.tmp)
    try:
        argv = client.argv_fn(srv.url, a.n, cfg)
        rc, o, e, ru = run_proc(argv, env=client.env, timeout=a.timeout, cwd="/")
        res = last_json(o)
        if rc == 3 and res and "unsupported_option" in res:
            log("%s/%s: n/a (%s)" % (client.key, cfg, unsupported_why(res)))
            return {"unsupported": unsupported_why(res)}
        if rc != 0 or res is None:
            log("%s/%s failed (exit %s): %s" % (client.key, cfg, rc, e.strip()[-800:]))
            return None
        summ = srv.summary()
    finally:
        srv.stop()
    res["wait4_maxrss_kib"] = ru.ru_maxrss
    # VmHWM from the client itself when it reports it: Linux keeps a forked
    # child's ru_maxrss at least the parent's RSS across execve, so once this
    # driver grew past a client, wait4 reported the driver.
    res["peak_rss_kib"] = res.get("vmhwm_kib") or ru.ru_maxrss
    res["wait4_cpu_s"] = ru.ru_utime + ru.ru_stime
    res["server"] = summ
    res["delivered"] = summ.get("unique_uuids", 0)
    res["lost"] = a.n - res["delivered"]
    res["evps"] = res["delivered"] / res["e2e_s"] if res["e2e_s"] > 0 else 0.0
    res["cpu_us_per_ev"] = (res["cpu_s"] * 1e6 / res["delivered"]) if res["delivered"] else None
    return res


# ------------------------------------------------------------------ stats


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.0f", none="n/a"):
    return none if v is None else spec % v


def fmt_si(v):
    if v is None:
        return "n/a"
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e3:
        return "%.1fk" % (v / 1e3)
    return "%.0f" % v


def aggregate(runs, n):
    if not runs:
        return None
    g = lambda k: [r.get(k) for r in runs]
    srv = lambda k: [r["server"].get(k) for r in runs]
    lost = g("lost")
    return {
        "runs": len(runs),
        "capture_ns": med(g("capture_ns")),
        "e2e_s": med(g("e2e_s")),
        "evps": med(g("evps")),
        "lost": med(lost),
        "lost_max": max(lost),
        "cpu_us": med(g("cpu_us_per_ev")),
        "rss_mib": med([r["peak_rss_kib"] / 1024.0 for r in runs]),
        "requests": med(srv("requests")),
        "wire_b_ev": med([r["server"].get("wire_bytes", 0) / n for r in runs]),
        "body_b_ev": med([r["server"].get("body_bytes", 0) / n for r in runs]),
        "main_loop_cpu_ns": med([r["main_loop_cpu_s"] * 1e9 / n for r in runs
                                 if "main_loop_cpu_s" in r]),
        "flusher_cpu_us": med([(r["cpu_s"] - r["main_cpu_s"]) * 1e6 / max(r["delivered"], 1)
                               for r in runs if "main_cpu_s" in r]),
        "version": runs[0].get("version"),
    }


# ------------------------------------------------------------------ report


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = ["?"]
    node_v = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("node") else "n/a"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "load": " ".join(load),
        "python": platform.python_version(),
        "node": node_v,
    }


def ratio(x, y):
    return None if x is None or y is None or y == 0 else x / y


def render(a, info, clients, agg, lat, brk, mem, git_rev, elapsed, v1_server=(None, "")):
    L = []
    w = L.append
    w("# libposthog benchmark (issue 5)")
    w("")
    w("- machine: %s, nproc %s, kernel %s; load average at start %s" %
      (info["cpu"], info["nproc"], info["kernel"], info["load"]))
    w("- date: %s; libposthog %s; python %s; node %s" %
      (info["date"], git_rev, info["python"], info["node"]))
    w("- workload: N = %d events in one tight loop on one thread, event `bench_event`, "
      "distinct_id `user-<i mod 1000>`, properties "
      "`{\"plan\":\"pro\",\"count\":i,\"ratio\":0.5,\"flag\":true,\"path\":\"/checkout/step/2\","
      "\"tags\":[\"a\",\"b\"]}` built anew per event, then flush + shutdown; target: a fresh "
      "`posthog-ingest-server --no-store` on 127.0.0.1 per run" % a.n)
    w("- every figure is the median of %d runs, each a separate process; runs interleaved "
      "round-robin across clients" % a.runs)
    w("- tuned = batches of 1000, a queue that holds all N, gzip on "
      "(C: flush_at/max_batch_size=1000, max_queue_size=N, max_queue_bytes=N*512; "
      "node: flushAt/maxBatchSize=1000, maxQueueSize=N, disableCompression=false; "
      "python: flush_at=1000, max_queue_size=N, gzip=True)")
    w("- protocol rows (capture v1): libposthog C typed props with library options "
      "passed through `ph-bench --opt`: v1 + zstd/gzip/none = `capture_mode=v1` + "
      "`compression=zstd|gzip|none`, v0 + gzip = `capture_mode=v0 compression=gzip` (in tuned "
      "these replace `gzip=1`); c-typed / c-json set no protocol option (the library's "
      "default). posthog-node v1 = `POSTHOG_CAPTURE_MODE=v1` in its environment (5.x has no "
      "constructor option; gzip as in its v0 rows); posthog-python v1 = "
      "`Posthog(..., capture_mode=\"v1\")` (compression follows its `gzip` flag: none at "
      "default, gzip in tuned). The peers' v0 rows run with POSTHOG_CAPTURE_MODE unset.")
    v1_ok, v1_why = v1_server
    w("- capture v1 on the local ingest server: %s" % (
        "not probed" if v1_ok is None else ("yes (%s)" % v1_why if v1_ok else
                                            "**no** — %s; the v1 rows are n/a" % v1_why)))
    w("")
    w("## Clients side by side")
    w("")
    w("| client | config | capture ns/ev | end-to-end s | delivered ev/s | lost | "
      "CPU µs/ev | peak RSS MiB | requests | wire B/ev | body B/ev |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in clients:
        for cfg in CONFIGS:
            s = agg.get((c.key, cfg))
            ver = " %s" % s["version"] if s and s.get("version") and \
                not c.key.startswith("c-") else ""
            head, sep, tail = c.label.partition(",")
            label = head + ver + sep + tail
            if not c.available:
                # one row for both configs: the reason is the same
                if cfg == CONFIGS[0]:
                    w("| %s | all | n/a (%s) | | | | | | | | |" %
                      (label, c.why.replace("|", "/")[:200]))
                continue
            if s is None:
                w("| %s | %s | n/a (all runs failed) | | | | | | | | |" % (label, cfg))
                continue
            lost = "%d" % s["lost"]
            if s["lost_max"] != s["lost"]:
                lost += " (max %d)" % s["lost_max"]
            w("| %s | %s | %s | %.3f | %s | %s | %s | %.1f | %.0f | %.1f | %.1f |" % (
                label, cfg, fmt(s["capture_ns"]), s["e2e_s"], fmt_si(s["evps"]), lost,
                fmt(s["cpu_us"], "%.2f"), s["rss_mib"], s["requests"], s["wire_b_ev"],
                s["body_b_ev"]))
    w("")
    w("capture ns/ev = loop wall time / N (includes building the properties and the "
      "distinct_id); end-to-end = loop start to flush+shutdown returned; delivered = the "
      "server's unique uuids; CPU = user+sys of the whole process (all threads) over the "
      "same window / delivered events; peak RSS = the process's VmHWM (its own address space; wait4's ru_maxrss carries the driver's RSS across fork+exec).")
    ct = agg.get(("c-typed", "default"))
    if ct and ct.get("main_loop_cpu_ns") is not None:
        w("libposthog C typed, default: capture-thread CPU %.0f ns/ev (vs %.0f ns/ev wall); "
          "flusher thread CPU (process minus main thread) %.2f µs/ev." %
          (ct["main_loop_cpu_ns"], ct["capture_ns"], ct["flusher_cpu_us"]))
    w("")

    # ratios
    w("## Ratios libposthog / peer (same run)")
    w("")
    w("Lower is better for capture cost, CPU and RSS; higher is better for events/s.")
    w("")
    w("| libposthog | peer | capture cost | events/s | CPU per event | peak RSS |")
    w("|---|---|---:|---:|---:|---:|")
    pairs = []
    for peer in ("node", "python"):
        for cfg in CONFIGS:
            pairs.append((("c-typed", cfg), (peer, cfg)))
        pairs.append((("c-typed", "default"), (peer, "tuned")))
    pairs.append((("py-binding", "default"), ("python", "default")))
    pairs.append((("py-binding", "tuned"), ("python", "tuned")))
    # capture v1: libposthog v1 + zstd against the SDKs in v1 mode, and against its own v0
    for peer in ("node-v1", "python-v1"):
        for cfg in CONFIGS:
            pairs.append((("c-v1-zstd", cfg), (peer, cfg)))
        pairs.append((("c-v1-zstd", "default"), (peer, "tuned")))
    for lk in ("c-v1-zstd", "c-v1-gzip", "c-v1-none"):
        pairs.append(((lk, "default"), ("c-v0-gzip", "default")))
    names = {c.key: c.label for c in clients}
    for (k, cfg), st in agg.items():  # the peers' versions, as in the table above
        if st and st.get("version") and not k.startswith("c-") and k in names:
            head, sep, tail = names[k].partition(",")
            if not head.endswith(st["version"]):
                names[k] = head + " " + st["version"] + sep + tail
    for (lk, lc), (pk, pc) in pairs:
        l, p = agg.get((lk, lc)), agg.get((pk, pc))
        if not l or not p:
            continue
        r = lambda k: ratio(l[k], p[k])
        w("| %s (%s) | %s (%s) | %s | %s | %s | %s |" % (
            names[lk], lc, names[pk], pc, fmt(r("capture_ns"), "%.4f"), fmt(r("evps"), "%.1fx"),
            fmt(r("cpu_us"), "%.4f"), fmt(r("rss_mib"), "%.2f")))
    w("")

    # latency
    w("## Latency of single posthog_capture calls (libposthog C, typed props, default options)")
    w("")
    if lat:
        any_l = next(iter(lat.values()))
        w("Timer: %s around each call (median overhead of an empty timed region %.0f ns, "
          "included below); properties built before the timed region; N calls split over the "
          "producer threads; median over %d runs of each percentile." %
          (any_l["timer"], any_l["timer_overhead_ns"], a.runs))
        w("")
        w("cold = a fresh client (the queue's ring is touched for the first time "
          "during the timed pass); warm = the same client after an untimed pass of N "
          "captures + flush (ring pages resident), i.e. a long-running process. "
          "minor faults = page faults of the process during the timed pass.")
        w("")
        w("| producer threads | state | p50 ns | p90 ns | p99 ns | p99.9 ns | max µs | "
          "mean ns | minor faults | rejected |")
        w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key in sorted(lat, key=lambda k: (k[1], k[0])):
            s = lat[key]
            w("| %d | %s | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f | %.0f | %d |" % (
                key[0], "warm" if key[1] else "cold", s["p50_ns"], s["p90_ns"], s["p99_ns"],
                s["p999_ns"], s["max_ns"] / 1000, s["mean_ns"], s["minor_faults"],
                s["rejected"]))
        w("")
        edges = any_l["hist_edges_ns"]
        heads = ["< %s" % ("%d ns" % e if e < 1000 else "%g µs" % (e / 1000)) for e in edges]
        heads.append(">= %g µs" % (edges[-1] / 1000))
        w("Histogram (share of calls, all runs pooled):")
        w("")
        w("| threads | state | " + " | ".join(heads) + " |")
        w("|---:|---|" + "---:|" * len(heads))
        for key in sorted(lat, key=lambda k: (k[1], k[0])):
            cnt = lat[key]["hist_counts"]
            tot = float(sum(cnt)) or 1.0
            w("| %d | %s | " % (key[0], "warm" if key[1] else "cold") +
              " | ".join("%.2f%%" % (100 * c / tot) for c in cnt) + " |")
        w("")
    else:
        w("n/a (failed)")
        w("")

    # breakdown
    w("## Flusher breakdown (per event, libposthog internals, gzip_level %d)" %
      (brk["level"] if brk else 1))
    w("")
    if brk:
        b = brk
        a_ = b["format_ns"]
        bb = b["builder_gzip_ns"] - b["format_ns"]
        c_ = b["http_b1000_ns"]
        d_ = b["zlib_deflate_ns"]
        w("Measured by `ph-bench-flusher` on the workload's %d records (best of 3 passes); "
          "batches of 1000 events unless said." % b["n"])
        w("")
        w("| stage | ns/event | note |")
        w("|---|---:|---|")
        w("| queue peek + pop | %.0f | consumer side of the ring, incl. zeroing consumed "
          "bytes |" % b["queue_pop_ns"])
        w("| (a) format records to JSON | %.0f | posthog__event_write, %.0f B/event of JSON "
          "from %.0f B/event of record |" % (a_, b["raw_bytes"], b["record_bytes"]))
        w("| (b) batch builder incl. deflate | %.0f | posthog__builder_add/seal/set_tail "
          "minus (a); of which staging/copy without gzip %.0f |" %
          (bb, b["builder_raw_ns"] - b["format_ns"]))
        w("| (c) HTTP send | %.0f | libcurl POST of the pre-built bodies, one keep-alive "
          "connection, wall time incl. the server's gunzip+validation; client CPU %.0f |" %
          (c_, b["http_cpu_b1000_ns"]))
        w("| (c') HTTP send, batches of 100 | %.0f | same with flush_at-sized batches; "
          "client CPU %.0f |" % (b["http_b100_ns"], b["http_cpu_b100_ns"]))
        w("| (d) zlib deflate alone | %.0f | raw deflate, same bytes, same level, one "
          "deflate(Z_FINISH) per batch; crc32 alone %.0f |" % (d_, b["zlib_crc32_ns"]))
        zl = [lv for lv in (1, 3) if ("zstd_l%d_ns" % lv) in b]
        for lv in zl:
            w("| (e) zstd floor, level %d | %.0f | libzstd %s alone, same bytes, streamed as "
              "the builder feeds its compressor (ZSTD_compressStream2, %d KiB chunks, "
              "ZSTD_e_end at seal); one ZSTD_compressCCtx per batch %.0f; streamed, batches "
              "of 100: %.0f |" % (
                  lv, b["zstd_l%d_stream_ns" % lv], b.get("zstd_version", "?"),
                  b.get("zstd_chunk", 65536) // 1024, b["zstd_l%d_ns" % lv],
                  b["zstd_l%d_stream_b100_ns" % lv]))
        w("| a + b + c | %.0f | flusher cost per event (batches of 1000) |" % (a_ + bb + c_))
        w("")
        w("Bytes per event: JSON %.0f, gzip body %.1f (batches of 1000) / %.1f (batches of "
          "100), zlib alone %.1f. Builder overhead over zlib alone: (b) - (d) - crc32 = "
          "%.0f ns/event." % (b["raw_bytes"], b["gzip_bytes_b1000"], b["gzip_bytes_b100"],
                              b["zlib_bytes"], bb - d_ - b["zlib_crc32_ns"]))
        if zl:
            w("")
            w("zstd floor (e) next to the zlib floor (d), same uncompressed bodies (the "
              "builder's v0 bodies; a v1 body differs by the api_key prefix and $lib/"
              "$lib_version, a few % of the bytes):")
            w("")
            w("| compressor | ns/event, batches of 1000 (streamed / one-shot) | vs zlib (d) | "
              "B/event, batches of 1000 | B/event, batches of 100 |")
            w("|---|---:|---:|---:|---:|")
            w("| zlib level %d, raw deflate (d) | %.0f | 1.00 | %.1f | %.1f (builder) |" % (
                b["level"], d_, b["zlib_bytes"], b["gzip_bytes_b100"]))
            for lv in zl:
                st = b["zstd_l%d_stream_ns" % lv]
                w("| zstd level %d (e) | %.0f / %.0f | %s | %.1f | %.1f |" % (
                    lv, st, b["zstd_l%d_ns" % lv], fmt(ratio(st, d_), "%.2f"),
                    b["zstd_l%d_stream_bytes" % lv], b["zstd_l%d_stream_b100_bytes" % lv]))
            w("")
            w("The builder's own overhead over its compressor (staging, crc32, buffer "
              "management) comes on top of either floor: (b) - (d) = %.0f ns/event with "
              "zlib today." % (bb - d_))
        if ct and ct.get("flusher_cpu_us") is not None:
            w("For comparison, the end-to-end run's flusher thread used %.2f µs CPU/event "
              "(C typed, default options)." % ct["flusher_cpu_us"])
        if b.get("http_errors"):
            w("**%d HTTP errors during the send measurement.**" % b["http_errors"])
        w("")
    else:
        w("n/a (failed)")
        w("")

    # memory bound
    w("## Memory bound with the server down (default options)")
    w("")
    mem_pass = None
    if mem:
        m = mem
        growth = (m["maxrss_kib"] - m["rss_base_kib"]) / 1024.0
        budget = m["max_queue_bytes"] / 1048576.0
        mem_pass = growth <= budget
        w("Host = a closed loopback port; %d captures (%.2f s) with the default options; "
          "then shutdown(1000 ms)." % (m["n"], m["loop_s"]))
        w("")
        w("| figure | value |")
        w("|---|---:|")
        w("| accepted (captured) | %d |" % m["captured"])
        w("| dropped_queue_full | %d |" % m["dropped_queue_full"])
        w("| dropped_retries_exhausted | %d |" % m["dropped_retries_exhausted"])
        w("| dropped_shutdown | %d |" % m["dropped_shutdown"])
        w("| requests attempted | %d |" % m["lib_requests"])
        w("| RSS before client_new / after (fixed overhead) | %.1f / %.1f MiB |" %
          (m["rss_start_kib"] / 1024.0, m["rss_base_kib"] / 1024.0))
        w("| peak RSS (ru_maxrss) / peak sampled | %.1f / %.1f MiB |" %
          (m["maxrss_kib"] / 1024.0, m["rss_peak_sampled_kib"] / 1024.0))
        w("| growth over the fixed overhead | %.1f MiB |" % growth)
        w("| budget: max_queue_bytes | %.1f MiB |" % budget)
        w("| verdict (growth <= max_queue_bytes) | %s |" % ("PASS" if mem_pass else "MISS"))
        w("max_queue_bytes bounds the whole pipeline: the queue (3/4), sealed batches waiting "
          "to be sent or retried (1/8) and the flusher's working memory (1/8).")
        w("")
    else:
        w("n/a (failed)")
        w("")

    # targets
    w("## Issue targets (reported, not asserted)")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")

    def verdict(ok):
        return "n/a" if ok is None else ("PASS" if ok else "MISS")

    cj = agg.get(("c-json", "default"))
    nt = agg.get(("node", "tuned"))
    rows = []
    v = ct and ct["capture_ns"]
    rows.append(("capture median <= 300 ns/event, typed props (C, default; wall time of the "
                 "loop / N)", fmt(v, "%.0f ns") + (
                     " (capture-thread CPU %.0f ns)" % ct["main_loop_cpu_ns"]
                     if ct and ct.get("main_loop_cpu_ns") is not None else ""),
                 verdict(None if v is None else v <= 300)))
    l1 = lat.get((1, False)) if lat else None
    v = l1 and l1["p99_ns"]
    rows.append(("capture p99 <= 2 µs (1 producer thread, cold client)", fmt(v, "%.0f ns"),
                 verdict(None if v is None else v <= 2000)))
    for key, what in (((2, False), "2 producer threads, cold"), ((1, True), "1 thread, warm"),
                      ((2, True), "2 producer threads, warm")):
        lx = lat.get(key) if lat else None
        if lx:
            rows.append(("(same, %s; for information)" % what, "%.0f ns" % lx["p99_ns"],
                         "PASS" if lx["p99_ns"] <= 2000 else "MISS"))
    v = cj and cj["capture_ns"]
    rows.append(("JSON path <= 1 µs/event (C, default)", fmt(v, "%.0f ns") + (
        " (capture-thread CPU %.0f ns)" % cj["main_loop_cpu_ns"]
        if cj and cj.get("main_loop_cpu_ns") is not None else ""),
                 verdict(None if v is None else v <= 1000)))
    r = ratio(ct and ct["evps"], nt and nt["evps"])
    rows.append(("end-to-end >= 25x posthog-node events/s (C typed default vs node tuned)",
                 fmt(r, "%.1fx"), verdict(None if r is None else r >= 25)))
    r = ratio(ct and ct["cpu_us"], nt and nt["cpu_us"])
    rows.append(("CPU/event <= 1/25 of posthog-node (C typed default vs node tuned)",
                 "n/a" if r is None else "1/%.1f" % (1 / r) if r else "0",
                 verdict(None if r is None else r <= 1 / 25.0)))
    lib_def = [agg.get((k, "default")) for k in ("c-typed", "c-json", "py-binding")]
    lib_def = [s for s in lib_def if s]
    worst = max((s["lost_max"] for s in lib_def), default=None)
    rows.append(("zero loss at libposthog DEFAULT options (every run, C typed/JSON, Python)",
                 fmt(worst, "max lost %d"), verdict(None if worst is None else worst == 0)))
    v = ct and ct["rss_mib"]
    rows.append(("peak RSS <= 64 MiB for the %d-event run (C typed, default)" % a.n,
                 fmt(v, "%.1f MiB"), verdict(None if v is None else v <= 64)))
    if mem:
        rows.append(("server down: RSS growth <= max_queue_bytes, drops counted",
                     "%.1f MiB, %d dropped_queue_full" % (
                         (mem["maxrss_kib"] - mem["rss_base_kib"]) / 1024.0,
                         mem["dropped_queue_full"]), verdict(mem_pass)))
    for row in rows:
        w("| %s | %s | %s |" % row)
    w("")

    # capture v1 targets
    w("### Capture v1 targets (reported, not asserted)")
    w("")
    w("libposthog at its default options plus the protocol options (C typed props, config "
      "`default`); the peer in its tuned config, as in the targets above (posthog-node "
      "loses most of the burst at its defaults). All from this run.")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    why_of = {c.key: c.why for c in clients if not c.available}
    na = lambda k: "n/a (%s)" % why_of.get(k, "not run").replace("|", "/")[:160]
    v1rows = []
    proto = [k for k, _, _, _ in C_PROTOCOL_ROWS]
    got = {k: agg.get((k, "default")) for k in proto}
    ran = [k for k in proto if got[k]]
    if ran:
        worst = max(got[k]["lost_max"] for k in ran)
        meas = ", ".join("%s max %d" % (k, got[k]["lost_max"]) for k in ran)
        missing = [k for k in proto if not got[k]]
        if missing:
            meas += "; n/a: " + ", ".join(missing)
        ok = False if worst > 0 else (True if not missing else None)
    else:
        meas, ok = na(proto[0]), None
    v1rows.append(("0 events lost at default options, every run (%s)" % ", ".join(proto),
                   meas, verdict(ok)))
    z, g0 = got.get("c-v1-zstd"), got.get("c-v0-gzip")
    r = ratio(z and z["cpu_us"], g0 and g0["cpu_us"])
    v1rows.append(("CPU per delivered event, v1 + zstd <= 0.6x v0 + gzip (same run, C typed, "
                   "default)",
                   "%.2fx (%.2f vs %.2f µs)" % (r, z["cpu_us"], g0["cpu_us"]) if r is not None
                   else na("c-v1-zstd" if not z else "c-v0-gzip"),
                   verdict(None if r is None else r <= 0.6)))
    for peer_cfg, info_only in (("tuned", False), ("default", True)):
        nv = agg.get(("node-v1", peer_cfg))
        r = ratio(z and z["evps"], nv and nv["evps"])
        v1rows.append(("%sevents/s >= 40x posthog-node in v1 mode (C v1 + zstd default vs "
                       "node v1 %s)" % ("(same, for information) " if info_only else "",
                                        peer_cfg),
                       "%.1fx (%s vs %s ev/s)" % (r, fmt_si(z["evps"]), fmt_si(nv["evps"]))
                       if r is not None else na("c-v1-zstd" if not z else "node-v1"),
                       verdict(None if r is None else r >= 40)))
    v = z and z["rss_mib"]
    same_n = a.n == TODAY_RSS_N
    v1rows.append(("peak RSS no higher than today (%.1f MiB: C typed, default, %d events, "
                   "README) — C v1 + zstd, default" % (TODAY_RSS_MIB, TODAY_RSS_N),
                   (fmt(v, "%.1f MiB") + ("" if same_n or v is None else
                                          " (N = %d here: indicative only)" % a.n))
                   if v is not None else na("c-v1-zstd"),
                   verdict(None if v is None else v <= TODAY_RSS_MIB) +
                   ("" if same_n or v is None else " (N differs)")))
    for row in v1rows:
        w("| %s | %s | %s |" % row)
    w("")
    w("Reference (issue, earlier on this machine): posthog-node %s; posthog-python %s." %
      (ISSUE_REFERENCE["posthog-node"], ISSUE_REFERENCE["posthog-python"]))
    w("")
    w("Caveat: the machine is shared and was loaded during the run (load average above), "
      "and the ingest server runs on the same %s cores; treat differences under ~20%% as "
      "noise. Total bench time %.0f s." % (info["nproc"], elapsed))
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(REPO, "build-bench"))
    ap.add_argument("--python", help="venv python with posthog (and libposthog)")
    ap.add_argument("--node-modules", help="node_modules holding posthog-node")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.md"))
    ap.add_argument("--membound-n", type=int, default=2000000)
    ap.add_argument("--timeout", type=int, default=300, help="seconds per client process")
    ap.add_argument("--rev", help="what was built (default: git describe of the work tree)")
    ap.add_argument("--only", help="comma-separated client keys (%s), and/or \"flags\" for the "
                    "feature-flag section (flags alone: only that section, written to "
                    "results/flags.md)" % ",".join(CLIENT_KEYS))
    ap.add_argument("--flags-iters", type=int, default=200000,
                    help="timed C calls per flag workload (the Python and Node clients run fewer)")
    ap.add_argument("--force-v1", action="store_true",
                    help="run the capture v1 rows even when the ingest server answers 404 "
                    "on %s" % V1_PATH)
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if a.python and os.sep in a.python:  # the clients run with cwd=/
        a.python = os.path.abspath(a.python)
    if a.node_modules:
        a.node_modules = os.path.abspath(a.node_modules)
    a.server = os.path.join(a.build, "tools", "posthog-ingest-server")
    for f in (a.server, os.path.join(a.build, "bench", "ph-bench"),
              os.path.join(a.build, "bench", "ph-bench-flusher")):
        if not os.access(f, os.X_OK):
            log("missing %s: build first (tools/bench.sh does)" % f)
            return 2
    keep = set(x.strip() for x in a.only.split(",") if x.strip()) if a.only else None
    if keep == {"flags"}:
        return flags_only(a)
    a.tmp = tempfile.mkdtemp(prefix="ph-bench-")
    t_start = time.monotonic()
    info = machine_info()
    rev = a.rev or subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                  capture_output=True, text=True).stdout.strip() or "?"
    try:
        if a.only:
            unknown = keep - set(CLIENT_KEYS) - {"flags"}
            if unknown:
                log("--only: unknown client key(s) %s; known: %s" % (
                    ",".join(sorted(unknown)), ",".join(CLIENT_KEYS)))
                return 2
        clients = make_clients(a)
        if a.only:
            clients = [c for c in clients if c.key in keep]
        v1_ok, v1_why = (True, "not probed (--force-v1)") if a.force_v1 else probe_v1(a)
        log("capture v1 on the ingest server: %s" % (v1_why if v1_why else "yes"))
        for c in clients:
            if c.v1 and c.available and not v1_ok:
                c.available, c.why = False, v1_why
            if not c.available:
                log("%s: n/a (%s)" % (c.label, c.why))
        runs = {}
        for r in range(a.runs):
            for c in clients:
                if not c.available:
                    continue
                for cfg in CONFIGS:
                    t0 = time.monotonic()
                    if not c.available:  # refused an option in an earlier run
                        continue
                    res = one_run(a, c, cfg)
                    if res and "unsupported" in res:
                        c.available, c.why = False, res["unsupported"]
                        runs.pop((c.key, "default"), None)
                        runs.pop((c.key, "tuned"), None)
                        continue
                    if res:
                        runs.setdefault((c.key, cfg), []).append(res)
                        log("run %d/%d %-10s %-7s %8.0f ns/ev capture, e2e %7.3f s, "
                            "%9.0f ev/s, lost %d (%.1f s)" % (
                                r + 1, a.runs, c.key, cfg, res["capture_ns"], res["e2e_s"],
                                res["evps"], res["lost"], time.monotonic() - t0))
        agg = {k: aggregate(v, a.n) for k, v in runs.items()}

        ph = os.path.join(a.build, "bench", "ph-bench")
        lat_runs = {}
        lat_modes = ((1, False), (2, False), (1, True), (2, True))
        for r in range(a.runs):
            for t, warm in lat_modes:
                srv = Server(a.server, a.tmp)
                try:
                    argv = [ph, "latency", str(t), srv.url, str(a.n)] + (["warm"] if warm else [])
                    rc, o, e, _ = run_proc(argv, timeout=a.timeout)
                finally:
                    srv.stop()
                res = last_json(o)
                if rc == 0 and res:
                    lat_runs.setdefault((t, warm), []).append(res)
                    log("latency %d thread(s)%s: p50 %.0f p99 %.0f p99.9 %.0f max %.0f ns, "
                        "%d minor faults" % (t, " warm" if warm else "", res["p50_ns"],
                                             res["p99_ns"], res["p999_ns"], res["max_ns"],
                                             res["minor_faults"]))
                else:
                    log("latency %d failed: %s" % (t, e.strip()[-500:]))
        lat = {}
        for key, rs in lat_runs.items():
            s = dict(rs[0])
            for k in ("mean_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns",
                      "timer_overhead_ns", "rejected", "minor_faults"):
                s[k] = med([x[k] for x in rs])
            s["hist_counts"] = [sum(x["hist_counts"][i] for x in rs)
                                for i in range(len(s["hist_counts"]))]
            lat[key] = s

        brk = None
        srv = Server(a.server, a.tmp)
        try:
            rc, o, e, _ = run_proc([os.path.join(a.build, "bench", "ph-bench-flusher"), srv.url,
                                    str(a.n), "1"], timeout=a.timeout)
        finally:
            srv.stop()
        brk = last_json(o) if rc == 0 else None
        log("flusher breakdown: %s" % (json.dumps(brk) if brk else "failed: " + e[-500:]))

        url = closed_port_url()
        rc, o, e, _ = run_proc([ph, "membound", url, str(a.membound_n)], timeout=a.timeout)
        mem = last_json(o) if rc == 0 else None
        log("memory bound: %s" % (json.dumps(mem) if mem else "failed: " + e[-500:]))

        # disk spool cost (issue 3): its own markdown section
        srv = Server(a.server, a.tmp)
        try:
            spool_dir = os.path.join(a.tmp, "durability")
            os.makedirs(spool_dir, exist_ok=True)
            rc, o, e, _ = run_proc([os.path.join(a.build, "bench", "ph-bench-durability"), srv.url,
                                    str(min(a.n, 50000)), "2000", str(a.runs), spool_dir],
                                   timeout=a.timeout)
        finally:
            srv.stop()
        durability = o if rc == 0 else "## Disk spool cost (durability)\n\nn/a (failed)\n"
        log("durability: %s" % ("ok" if rc == 0 else "failed: " + e[-500:]))

        # fork() latency with a live client: its own markdown section
        srv = Server(a.server, a.tmp)
        try:
            rc, o, e, _ = run_proc([os.path.join(a.build, "bench", "ph-bench-fork"), srv.url,
                                    "200", str(a.runs)], timeout=a.timeout)
        finally:
            srv.stop()
        forkcost = o if rc == 0 else "## fork() with a live client\n\nn/a (failed)\n"
        log("fork: %s" % ("ok" if rc == 0 else "failed: " + e[-500:]))
        durability += "\n" + forkcost

        flags_md, flags_raw = "", None
        if keep is None or "flags" in keep:
            flags_md, flags_raw = flags_report.run_flags(a, Server, run_proc, last_json, log)
        report = render(a, info, clients, agg, lat, brk, mem, rev,
                        time.monotonic() - t_start, (v1_ok, v1_why))
        if flags_md:
            report += "\n" + flags_md
        marker = "## Issue targets"
        report = (report.replace(marker, durability + "\n" + marker, 1) if marker in report
                  else report + "\n" + durability)
    finally:
        shutil.rmtree(a.tmp, ignore_errors=True)
    print(report)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(report)
    raw = os.path.splitext(a.out)[0] + ".json"
    with open(raw, "w") as f:
        json.dump({"machine": info, "n": a.n, "runs": a.runs, "v1_server": [v1_ok, v1_why],
                   "clients": {c.key: {"label": c.label, "opts": c.opts, "available": c.available,
                                       "why": c.why} for c in clients},
                   "results": {"%s/%s" % k: v for k, v in runs.items()},
                   "latency": {"%d%s" % (k[0], "-warm" if k[1] else ""): v
                               for k, v in lat_runs.items()}, "breakdown": brk, "membound": mem,
                   "flags": flags_raw}, f, indent=1)
    log("wrote %s and %s" % (a.out, raw))
    return 0


def flags_only(a):
    """BENCH_ONLY=flags: the feature-flag section alone (results/flags.md + .json)."""
    a.tmp = tempfile.mkdtemp(prefix="ph-bench-")
    try:
        info = machine_info()
        md, raw = flags_report.run_flags(a, Server, run_proc, last_json, log)
    finally:
        shutil.rmtree(a.tmp, ignore_errors=True)
    rev = a.rev or subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                  capture_output=True, text=True).stdout.strip() or "?"
    report = "# libposthog feature-flag benchmark\n\n%s, %s cores, %s; libposthog %s\n\n%s" % (
        info.get("cpu", "?"), info.get("nproc", "?"), datetime.date.today().isoformat(), rev, md)
    print(report)
    out = os.path.join(os.path.dirname(os.path.abspath(a.out)), "flags.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(report)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"machine": info, "runs": a.runs, "flags": raw}, f, indent=1)
    log("wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
