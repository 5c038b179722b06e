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
flusher cost breakdown (ph-bench-flusher) and the memory bound with the
server down. Prints one markdown report and writes it to --out.
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
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Earlier measurements on this machine quoted by the issue (for context only).
ISSUE_REFERENCE = {
    "posthog-node": "~21k events/s, 56 us CPU/event (tuned)",
    "posthog-python": "13.6k events/s, 82 us CPU/event",
}

CONFIGS = ("default", "tuned")


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
    def __init__(self, key, label, argv_fn, env=None, available=True, why=""):
        self.key, self.label, self.argv_fn = key, label, argv_fn
        self.env, self.available, self.why = env, available, why


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
    script = os.path.join(HERE, "python", "bench_py.py")

    def py_ok(mod):
        if not py or not os.path.exists(py):
            return False, "no bench venv"
        rc, o, e, _ = run_proc([py, "-c", "import %s" % mod], cwd="/", timeout=60)
        return rc == 0, (e.strip().splitlines() or ["import failed"])[-1]

    ok, why = py_ok("libposthog")
    clients.append(Client("py-binding", "libposthog Python binding",
                          lambda url, n, cfg: [py, script, "libposthog", url, str(n), cfg],
                          available=ok, why=why))
    node_ok = bool(node_modules) and os.path.isdir(os.path.join(node_modules, "posthog-node"))
    env = dict(os.environ, BENCH_NODE_MODULES=node_modules or "")
    clients.append(Client("node", "posthog-node",
                          lambda url, n, cfg: ["node", os.path.join(HERE, "node", "bench.js"),
                                               url, str(n), cfg],
                          env=env, available=node_ok and shutil.which("node") is not None,
                          why="posthog-node not installed"))
    ok, why = py_ok("posthog")
    clients.append(Client("python", "posthog-python",
                          lambda url, n, cfg: [py, script, "posthog", url, str(n), cfg],
                          available=ok, why=why))
    return clients


def one_run(a, client, cfg):
    srv = Server(a.server, a.tmp)
    try:
        argv = client.argv_fn(srv.url, a.n, cfg)
        rc, o, e, ru = run_proc(argv, env=client.env, timeout=a.timeout, cwd="/")
        res = last_json(o)
        if rc != 0 or res is None:
            log("%s/%s failed (exit %s): %s" % (client.key, cfg, rc, e.strip()[-800:]))
            return None
        summ = srv.summary()
    finally:
        srv.stop()
    res["wait4_maxrss_kib"] = ru.ru_maxrss
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
        "rss_mib": med([r["wait4_maxrss_kib"] / 1024.0 for r in runs]),
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


def render(a, info, clients, agg, lat, brk, mem, git_rev, elapsed):
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
    w("")
    w("## Clients side by side")
    w("")
    w("| client | config | capture ns/ev | end-to-end s | delivered ev/s | lost | "
      "CPU µs/ev | peak RSS MiB | requests | wire B/ev | body B/ev |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in clients:
        for cfg in CONFIGS:
            s = agg.get((c.key, cfg))
            label = c.label + (" %s" % s["version"] if s and s.get("version") and
                               not c.key.startswith("c-") else "")
            if not c.available or s is None:
                why = c.why if not c.available else "all runs failed"
                w("| %s | %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" %
                  (label, cfg))
                if cfg == CONFIGS[-1]:
                    w("|  | (%s) | | | | | | | | | |" % why.replace("|", "/")[:120])
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
      "same window / delivered events; peak RSS = ru_maxrss of the process (wait4).")
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
    names = {c.key: c.label for c in clients}
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
        w("| a + b + c | %.0f | flusher cost per event (batches of 1000) |" % (a_ + bb + c_))
        w("")
        w("Bytes per event: JSON %.0f, gzip body %.1f (batches of 1000) / %.1f (batches of "
          "100), zlib alone %.1f. Builder overhead over zlib alone: (b) - (d) - crc32 = "
          "%.0f ns/event." % (b["raw_bytes"], b["gzip_bytes_b1000"], b["gzip_bytes_b100"],
                              b["zlib_bytes"], bb - d_ - b["zlib_crc32_ns"]))
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
    ap.add_argument("--only", help="comma-separated client keys (c-typed,c-json,py-binding,"
                    "node,python)")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    a.server = os.path.join(a.build, "tools", "posthog-ingest-server")
    for f in (a.server, os.path.join(a.build, "bench", "ph-bench"),
              os.path.join(a.build, "bench", "ph-bench-flusher")):
        if not os.access(f, os.X_OK):
            log("missing %s: build first (tools/bench.sh does)" % f)
            return 2
    a.tmp = tempfile.mkdtemp(prefix="ph-bench-")
    t_start = time.monotonic()
    info = machine_info()
    rev = a.rev or subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                  capture_output=True, text=True).stdout.strip() or "?"
    try:
        clients = make_clients(a)
        if a.only:
            keep = set(a.only.split(","))
            clients = [c for c in clients if c.key in keep]
        for c in clients:
            if not c.available:
                log("%s: n/a (%s)" % (c.label, c.why))
        runs = {}
        for r in range(a.runs):
            for c in clients:
                if not c.available:
                    continue
                for cfg in CONFIGS:
                    t0 = time.monotonic()
                    res = one_run(a, c, cfg)
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

        report = render(a, info, clients, agg, lat, brk, mem, rev,
                        time.monotonic() - t_start)
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
        json.dump({"machine": info, "n": a.n, "runs": a.runs,
                   "results": {"%s/%s" % k: v for k, v in runs.items()},
                   "latency": {"%d%s" % (k[0], "-warm" if k[1] else ""): v
                               for k, v in lat_runs.items()}, "breakdown": brk, "membound": mem}, f, indent=1)
    log("wrote %s and %s" % (a.out, raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
