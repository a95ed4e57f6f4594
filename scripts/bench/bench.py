#!/usr/bin/env python3
"""scripts/bench/bench.py — `make bench`: the tutorial's load test, reproduced.

Starts everything it needs on 127.0.0.1 with ports chosen at run time (the
gateway with configs generated under build/bench/, the C test server, nginx
as the baseline an operator would otherwise deploy), drives them with
build/mcp-bridge-load, stops everything it started by pid (also on error or
Ctrl-C), prints a table and writes build/bench/results.json.

Environment (the Makefile passes them through):
  BUILD          build directory holding the programs (default: build)
  BENCH_SECONDS  measured seconds per request scenario (default 6; the whole
                 run then takes about 3-4 minutes on 2 cores)
  PROFILE=1      also record the gateway scenarios with `perf record` (or
                 callgrind where perf cannot sample) and write the top
                 functions to build/bench/profile.txt
  BENCH_ONLY     comma-separated scenario names (or prefixes) to run
  BENCH_ROUNDS   rounds of the comparison group (default 3; PROFILE=1 makes it 1):
                 the gateway scenarios the targets compare and their baselines
                 run in turn, each round BENCH_SECONDS / BENCH_ROUNDS long, so
                 that the shared machine's slow spells fall on all of them

Server CPU is utime+stime from /proc/<pid>/stat summed over the server's
process tree (plus the CPU of children it reaped, such as workers retired
by a reload), read before and after the run. The test server's processes are
counted apart ("backend") so that the gateway's stdio children do not make
it look dearer than nginx, whose backend is a separate process. RSS is VmRSS
summed over the tree (PSS beside it: shared pages counted once).

Nothing here asserts a timing: this measures, it does not test.
"""

import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD") or "build")
OUT = os.path.join(ROOT, "build", "bench")
SECONDS = float(os.environ.get("BENCH_SECONDS") or 6)
PROFILE = os.environ.get("PROFILE", "0") not in ("", "0")
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS") or 3))
ONLY = [s for s in (os.environ.get("BENCH_ONLY") or "").split(",") if s]

GATEWAY = os.path.join(BUILD, "mcp-bridge")
TESTSRV = os.path.join(BUILD, "mcp-bridge-testserver")
LOADGEN = os.path.join(BUILD, "mcp-bridge-load")
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
CONNS = 100
ECHO_ARGS = '{"message":"hello"}'

started = []  # Popen objects we started, in start order
results = []
notes = []


def say(msg):
    print(msg, flush=True)


def note(msg):
    notes.append(msg)
    say("  note: " + msg)


# ------------------------------------------------------------ processes


def start(argv, name, stdout=None, **kw):
    """Starts a process we own; it is stopped by pid at exit."""
    log = open(os.path.join(OUT, name + ".out"), "w")
    p = subprocess.Popen(argv, stdout=stdout or log, stderr=log, cwd=OUT, **kw)
    p.bench_name = name
    started.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10.0):
    """Stops one process we started, and any descendant it left behind."""
    if p.poll() is None:
        family = tree(p.pid)
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"  {p.bench_name} (pid {p.pid}) did not stop in {timeout:.0f} s: SIGKILL")
            p.kill()
            p.wait()
        for pid in family:
            if pid != p.pid and alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    if p in started:
        started.remove(p)


def stop_all():
    for p in reversed(list(started)):
        stop(p)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def on_signal(signum, frame):
    say(f"\nsignal {signum}: stopping what was started")
    stop_all()
    sys.exit(1)


# ------------------------------------------------------------ /proc


def proc_table():
    """pid -> (ppid, comm, utime+stime, cutime+cstime) in ticks."""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1 : s.rindex(")")]
        f = s[s.rindex(")") + 2 :].split()
        t[int(d)] = (int(f[1]), comm, int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))
    return t


def tree(root, table=None):
    table = table or proc_table()
    kids = {}
    for pid, (ppid, *_rest) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(kids.get(pid, []))
    return out


def is_backend(comm):
    return comm.startswith("mcp-bridge-test")  # comm is cut at 15 chars


def cpu_of(roots):
    """CPU seconds of the trees under roots: (server, backend)."""
    table = proc_table()
    server = backend = 0
    for root in roots:
        for pid in tree(root, table):
            _ppid, comm, own, reaped = table[pid]
            if is_backend(comm):
                backend += own + reaped
            else:
                server += own + reaped
    return server / CLK_TCK, backend / CLK_TCK


def mem_of(roots, backends=False):
    """(RSS, PSS) in bytes summed over the trees, without or only the test
    server processes."""
    table = proc_table()
    rss = pss = 0
    for root in roots:
        for pid in tree(root, table):
            if is_backend(table[pid][1]) != backends:
                continue
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss += int(line.split()[1]) * 1024
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1]) * 1024
            except OSError:
                pass
    return rss, pss


def system_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / CLK_TCK  # all but idle and iowait


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ------------------------------------------------------------ helpers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, p, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if p.poll() is not None:
            raise RuntimeError(f"{p.bench_name} exited with {p.returncode} (see build/bench/{p.bench_name}.out)")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{p.bench_name} does not listen on port {port} after {timeout:.0f} s")


def run_load(args, timeout):
    """Runs mcp-bridge-load with --json; returns its result object."""
    argv = [LOADGEN, "--json"] + args
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise RuntimeError(f"mcp-bridge-load exited {r.returncode}: {r.stderr.strip()[-400:]}")


def failed_count(res):
    e = res.get("errors", {})
    return int(e.get("failed_requests", 0))


def error_summary(res):
    e = res.get("errors", {})
    parts = []
    for k in ("failed_requests", "connect", "handshake", "timeout", "closed", "lost", "bad_id", "bad_reply"):
        if e.get(k):
            parts.append(f"{k}={e[k]}")
    for k, v in (e.get("http_status") or {}).items():
        parts.append(f"http{k}={v}")
    for k, v in (e.get("jsonrpc") or {}).items():
        parts.append(f"rpc{k}={v}")
    return " ".join(parts)


def want(name):
    return not ONLY or any(name.startswith(o) for o in ONLY)


# ------------------------------------------------------------ servers


class Gateway:
    """One mcp-bridge master (and its workers) on a generated config."""

    seq = 0

    def __init__(self, name, backends=None, workers="auto", server_extra=None, extra=None):
        Gateway.seq += 1
        self.name = name
        self.port = free_port()
        self.cfg = os.path.join(OUT, f"gateway-{name}.yaml")
        self.shm = f"/dev/shm/mcp-bridge-bench-{os.getpid()}-{Gateway.seq}"
        lines = [
            f"# generated by scripts/bench/bench.py for the scenario {name}",
            f"workers: {workers}",
            f"pid_file: {OUT}/gateway-{name}.pid",
            "shm:",
            f"  path: {self.shm}",
            "logging:",
            "  level: warn",
            f"  error_log: {OUT}/gateway-{name}.log",
            # The load comes from one address: a per-client limit would
            # measure the limiter, and parallel gateways must not all bind
            # the default metrics port.
            "rate_limit:",
            "  enabled: false",
            "metrics:",
            "  enabled: false",
            "server:",
            "  listen:",
            "    - address: 127.0.0.1",
            f"      port: {self.port}",
        ]
        lines += ["  " + l for l in (server_extra or [])]
        if backends:
            lines.append("backends:")
            for b in backends:
                lines += ["  " + l for l in b]
        lines += extra or []
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def check(self):
        """None when `mcp-bridge -t` accepts the config, else its message."""
        r = subprocess.run([GATEWAY, "-t", "-c", self.cfg], capture_output=True, text=True)
        if r.returncode == 0:
            return None
        return (r.stderr + r.stdout).strip().splitlines()[-1] if (r.stderr + r.stdout).strip() else f"exit {r.returncode}"

    def start(self, wrapper=None):
        self.proc = start((wrapper or []) + [GATEWAY, "-g", "-c", self.cfg], "gateway-" + self.name)
        wait_port(self.port, self.proc, 60 if wrapper else 10)
        time.sleep(0.3 if not wrapper else 2)  # every worker up
        return self

    def pids(self):
        return tree(self.proc.pid)

    def stop(self):
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        try:
            os.unlink(self.shm)
        except OSError:
            pass


def stdio_backend():
    return ["- name: ts", "  transport: stdio", f"  command: [{TESTSRV}, --stdio]"]


def http_backend(port):
    return ["- name: ts", "  transport: http", "  endpoints:", f"    - url: http://127.0.0.1:{port}/mcp"]


def ws_backend(port):
    return ["- name: ts", "  transport: websocket", "  endpoints:", f"    - url: ws://127.0.0.1:{port}/"]


def start_testserver():
    p = start([TESTSRV, "--http", "0", "--ws", "0", "--log-level", "warn"], "testserver", stdout=subprocess.PIPE, text=True)
    ports = {}
    end = time.time() + 10
    while len(ports) < 2 and time.time() < end:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("the test server exited before listening (see build/bench/testserver.out)")
        w = line.split()
        if len(w) == 3 and w[0] == "listening":
            ports[w[1]] = int(w[2])
    return p, ports["http"], ports["ws"]


def nginx_binary():
    for c in ("nginx", "/usr/sbin/nginx"):
        path = shutil.which(c)
        if path:
            return path
    say("nginx is not installed: installing the Debian package nginx-light with apt-get (for the baseline only)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "nginx-light"]
    if os.geteuid() != 0:
        cmd = ["sudo", "-n"] + cmd
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        r2 = subprocess.run(cmd[:-1] + ["nginx"], env=env, capture_output=True, text=True)
        if r2.returncode != 0:
            return None
    # The package's own service is not ours to run: stop it if it started.
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def start_nginx(ts_http, ts_ws):
    exe = nginx_binary()
    if exe is None:
        return None, None, "nginx is not installed and apt-get could not install nginx-light"
    port = free_port()
    prefix = os.path.join(OUT, "nginx")
    for d in ("", "tmp"):
        os.makedirs(os.path.join(prefix, d), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""# generated by scripts/bench/bench.py: nginx as a plain reverse proxy in
# front of the test server (WebSocket on /ws/, Streamable HTTP on /mcp).
daemon off;
master_process on;
worker_processes {CORES};
worker_rlimit_nofile 20000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream ts_ws {{ server 127.0.0.1:{ts_ws}; }}
    upstream ts_http {{ server 127.0.0.1:{ts_http}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location /ws/ {{
            proxy_pass http://ts_ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
            proxy_buffering off;
        }}
        location /mcp {{
            proxy_pass http://ts_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
""")
    p = start([exe, "-p", prefix + "/", "-e", prefix + "/error.log", "-c", conf], "nginx")
    wait_port(port, p)
    time.sleep(0.2)
    return p, port, None


# ------------------------------------------------------------ profiling

profiler = None  # "perf", "callgrind" or None


def pick_profiler():
    if os.environ.get("BENCH_PROFILER") == "callgrind":
        return "callgrind" if shutil.which("valgrind") else None
    if shutil.which("perf"):
        r = subprocess.run(["perf", "stat", "-e", "instructions", "true"], capture_output=True, text=True)
        hw = r.returncode == 0 and "not supported" not in r.stderr
        probe = os.path.join(OUT, "perf-probe.data")
        r = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", probe, "--", "true"], capture_output=True, text=True)
        if r.returncode == 0:
            if not hw:
                note("perf: hardware counters not supported here (virtual machine); sampling on the cpu-clock software event")
            return "perf"
    if shutil.which("valgrind"):
        note("perf cannot sample here: profiling with valgrind --tool=callgrind on a short run")
        return "callgrind"
    note("PROFILE=1 but neither perf nor valgrind works here: no profile")
    return None


class PerfRecorder:
    def __init__(self, name, pids):
        self.name = name
        self.data = os.path.join(OUT, f"perf-{name}.data")
        self.p = start(
            ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", self.data, "-p", ",".join(map(str, pids))],
            f"perf-{name}",
        )

    def finish(self):
        stop(self.p, signal.SIGINT, 30)
        report = os.path.join(OUT, f"profile-{self.name}.txt")
        r = subprocess.run(
            ["perf", "report", "--stdio", "--no-children", "-g", "none", "--sort", "symbol,dso", "--percent-limit", "0.3", "-i", self.data],
            capture_output=True, text=True,
        )
        d = subprocess.run(["perf", "report", "--stdio", "--no-children", "-g", "none", "--sort", "dso", "-i", self.data],
                           capture_output=True, text=True)
        with open(report, "w") as f:
            f.write(d.stdout + "\n" + r.stdout)
        return ["by object:"] + top_lines(d.stdout, 8) + ["by function:"] + top_lines(r.stdout, 30)


def top_lines(text, n):
    rows = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    return rows[:n]


# ------------------------------------------------------------ scenarios


def record(name, status, **kw):
    r = {"scenario": name, "status": status}
    r.update(kw)
    results.append(r)
    if status != "ok":
        say(f"  {name}: {status.upper()}: {kw.get('reason', '')}")
    return r


def spec(name, url, server_roots, load_args, profile_pids=None, extra=None, direct=False):
    """A closed-loop request scenario: what to load and whose CPU counts.
    direct: the test server is the server measured, not a backend."""
    return {"name": name, "url": url, "roots": server_roots, "load_args": load_args,
            "profile_pids": profile_pids, "extra": extra, "direct": direct}


def measure(name, url, server_roots, load_args, profile_pids=None, extra=None, direct=False):
    """One closed-loop request scenario, measured now in one piece."""
    if not want(name):
        return None
    return measure_rounds([spec(name, url, server_roots, load_args, profile_pids, extra, direct)], 1)[0]


def one_round(sp, seconds, warmup, profile):
    """Loads one scenario once; returns the load generator's result and the
    CPU (server, backend, load generator, whole machine) spent meanwhile."""
    perf = PerfRecorder(sp["name"], sp["profile_pids"]) if (profile and profiler == "perf" and sp["profile_pids"]) else None
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, c0, t0 = system_busy(), cpu_of(sp["roots"]), time.time()
    try:
        res = run_load(["--connections", str(CONNS), "--warmup", f"{warmup:g}", "--duration", f"{seconds:g}"]
                       + sp["load_args"] + [sp["url"]], seconds + warmup + 60)
    finally:
        top = perf.finish() if perf else None
    wall = time.time() - t0
    c1, busy1 = cpu_of(sp["roots"]), system_busy()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server, backend = c1[0] - c0[0], c1[1] - c0[1]
    if sp["direct"]:
        server, backend = backend, 0.0
    load_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return {"res": res, "server": server, "backend": backend, "load": load_cpu, "busy": busy1 - busy0,
            "wall": wall, "profile_top": top}


def median(v):
    v = sorted(x for x in v if isinstance(x, (int, float)))
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def measure_rounds(specs, rounds):
    """Runs the scenarios in turn, rounds times over, each round SECONDS /
    rounds long (after a short warm-up on fresh connections). On a shared
    machine whose speed drifts by a quarter within minutes, a gateway and its
    baselines then see the same spells instead of whichever came during their
    turn. Totals over the rounds: req/s = measured requests / measured time,
    CPU per request = CPU / replies; p50 and p99 are the median of the
    rounds'. Returns the recorded results, in the order of specs."""
    secs = SECONDS / rounds
    warmup = 1.0 if rounds == 1 else 0.5
    acc = {sp["name"]: [] for sp in specs}
    failed = {}
    for rnd in range(rounds):
        for sp in specs:
            if sp["name"] in failed:
                continue
            if rnd == 0:
                say(f"- {sp['name']}: {sp['url']} {' '.join(sp['load_args'])}")
            try:
                acc[sp["name"]].append(one_round(sp, secs, warmup, profile=rnd == 0))
            except Exception as e:  # the server died or the load generator failed
                failed[sp["name"]] = str(e)
    out = []
    for sp in specs:
        name = sp["name"]
        if name in failed:
            out.append(record(name, "failed", reason=failed[name]))
            continue
        rs = acc[name]
        res = [r["res"] for r in rs]
        requests = sum(int(x.get("requests", 0)) for x in res)
        window = sum(float(x.get("duration_s", 0)) for x in res) or 1.0
        replies = max(sum(int(x.get("replies", 0)) for x in res), 1)
        server, backend = sum(r["server"] for r in rs), sum(r["backend"] for r in rs)
        load_cpu, busy, wall = sum(r["load"] for r in rs), sum(r["busy"] for r in rs), sum(r["wall"] for r in rs)
        rss, pss = mem_of(sp["roots"])
        brss, bpss = mem_of(sp["roots"], backends=True)
        if sp["direct"]:
            rss, pss, brss = brss, bpss, 0
        errs = " ".join(e for e in (error_summary(x) for x in res) if e)
        r = record(
            name,
            "ok" if requests > 0 else "failed",
            rps=round(requests / window, 1),
            p50_ms=median([x.get("latency_ms", {}).get("p50") for x in res]),
            p99_ms=median([x.get("latency_ms", {}).get("p99") for x in res]),
            server_cpu_us_per_req=round(server / replies * 1e6, 2),
            backend_cpu_us_per_req=round(backend / replies * 1e6, 2),
            server_cpu_pct=round(server / wall * 100, 1),
            loadgen_cpu_pct=round(load_cpu / wall * 100, 1),
            other_cpu_pct=round(max(0.0, busy - (server + backend + load_cpu)) / wall * 100, 1),
            rss_mb=round(rss / 2**20, 1),
            pss_mb=round(pss / 2**20, 1),
            backend_rss_mb=round(brss / 2**20, 1),
            rounds=len(rs),
            rps_rounds=[round(x.get("rps", 0)) for x in res],
            failed=sum(failed_count(x) for x in res),
            errors=errs,
            load=res[0] if len(res) == 1 else res,
        )
        if r["status"] != "ok":
            r["reason"] = "no successful request: " + errs
            say(f"  {name}: FAILED: {r['reason']}")
        if sp["extra"]:
            r.update(sp["extra"])
        if rs[0]["profile_top"]:
            r["profile_top"] = rs[0]["profile_top"]
        out.append(r)
    return out


group_stops = []  # stops the comparison group's servers, in start order


def gateway_spec(name, backends, load_args, tag=(), what="this config"):
    """Starts the gateway of one scenario of the comparison group; returns its
    spec, or None when the scenario is not wanted or could not start (then
    recorded as skipped or failed)."""
    if not want(name):
        return None
    gw = Gateway(name, backends=backends)
    why = gw.check()
    if why is not None:
        record(name, "skipped", reason=f"the config loader rejects {what}: {why}")
        return None
    group_stops.append(gw.stop)
    try:
        gw.start()
    except Exception as e:
        record(name, "failed", reason=str(e))
        return None
    return spec(name, f"ws://127.0.0.1:{gw.port}/", [gw.proc.pid] + list(tag), load_args, profile_pids=gw.pids())


def cached_scenario(name, backends, load_args):
    """The gateway with its shared caches on (the default): after the first
    request every reply comes from shared memory, not from the backend."""
    if not want(name):
        return
    gw = Gateway(name, backends=backends)
    why = gw.check()
    if why is not None:
        record(name, "skipped", reason=f"the config loader rejects the cache config: {why}")
        return
    try:
        gw.start()
        measure(name, f"ws://127.0.0.1:{gw.port}/", [gw.proc.pid], load_args, profile_pids=gw.pids() if PROFILE else None)
    except Exception as e:
        record(name, "failed", reason=str(e))
    finally:
        gw.stop()


def probe_streamable_http(port):
    """None when the gateway answers a Streamable HTTP initialize, else what
    it answered instead."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": "bench", "version": "0"}}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read(65536).decode("utf-8", "replace")
            if r.status == 200 and '"protocolVersion"' in text:
                return None
            return f"HTTP {r.status}: {text[:120]!r}"
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} {e.reason}"
    except OSError as e:
        return str(e)


def idle_scenario(name, count):
    if not want(name):
        return
    # File descriptors: 20000 per process here and ~28k loopback ports per
    # source address (DESIGN §9), so spread over workers, load processes and
    # 127.0.0.x source addresses.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per_proc = max(1000, min(hard, 20000) - 500)
    procs = max(1, math.ceil(count / (per_proc * 0.8)))
    workers = max(CORES, math.ceil(count / (per_proc * 0.6)))
    lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    nsrc = max(1, math.ceil(count / ((hi - lo) * 0.8)))
    avail = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            avail = int(line.split()[1]) * 1024
    need = count * 2 * 12 * 1024  # both ends: kernel socket + user space, generously
    if avail < need:
        record(name, "skipped", reason=f"needs about {need >> 20} MiB free, the machine has {avail >> 20} MiB")
        return
    if hard < 1024:
        record(name, "skipped", reason=f"the fd limit is {hard}")
        return
    srcs = ",".join(f"127.0.0.{i + 1}" for i in range(max(nsrc, procs)))
    gw = Gateway(name, workers=workers, server_extra=[
        "websocket:", "  read_buffer_size: 1024", "  ping_interval: 0s",
        f"max_connections: {count + 10000}", "idle_timeout: 0s"])
    why = gw.check()
    if why is not None:
        record(name, "skipped", reason=f"idle config rejected: {why}")
        return
    say(f"- {name}: {count} idle WebSocket connections; {workers} workers, {procs} load processes, source addresses {srcs}")
    try:
        gw.start()
        base_rss, base_pss = mem_of([gw.proc.pid])
        hold = max(4.0, SECONDS)
        argv = [LOADGEN, "--json", "--idle", str(count), "--hold", f"{hold:g}", "--processes", str(procs),
                "--source-ips", srcs, "--open-timeout", "90", f"ws://127.0.0.1:{gw.port}/"]
        t0 = time.time()
        lp = start(argv, "load-" + name, stdout=subprocess.PIPE, text=True)
        peak = (0, 0)
        while lp.poll() is None:
            m = mem_of([gw.proc.pid])
            if m[0] > peak[0]:
                peak = m
            time.sleep(0.5)
        out = lp.stdout.read()
        stop(lp)
        res = json.loads(out) if out.strip() else {}
        held = int((res.get("idle") or {}).get("open", 0))
        per_conn = (peak[0] - base_rss) / held if held else None
        record(name, "ok" if held else "failed",
               connections=held, target=count, open_s=round((res.get("idle") or {}).get("open_time_s", 0), 1),
               rss_mb=round(peak[0] / 2**20, 1), pss_mb=round(peak[1] / 2**20, 1),
               rss_baseline_mb=round(base_rss / 2**20, 1),
               bytes_per_conn=round(per_conn) if per_conn else None,
               workers=workers, load_processes=procs, errors=error_summary(res), load=res,
               reason="" if held else "no connection held: " + error_summary(res))
    except Exception as e:
        record(name, "failed", reason=str(e))
    finally:
        gw.stop()


def reload_scenario(backends):
    name = "reload"
    if not want(name):
        return
    gw = Gateway(name, backends=backends)
    try:
        gw.start()
        dur = max(2 * SECONDS, 8.0)
        hups = []
        stop_flag = threading.Event()

        def hupper():
            while not stop_flag.wait(2.0):
                try:
                    os.kill(gw.proc.pid, signal.SIGHUP)
                    hups.append(time.time())
                except ProcessLookupError:
                    return

        say(f"- reload: SIGHUP every 2 s for {dur:g} s under {CONNS} connections of tools/list")
        th = threading.Thread(target=hupper, daemon=True)
        c0 = cpu_of([gw.proc.pid])
        th.start()
        res = run_load(["--connections", str(CONNS), "--duration", f"{dur:g}", f"ws://127.0.0.1:{gw.port}/"], dur + 60)
        stop_flag.set()
        th.join()
        c1 = cpu_of([gw.proc.pid])
        e = res.get("errors", {})
        replies = max(int(res.get("replies", 0)), 1)
        record(name, "ok" if res.get("requests", 0) else "failed", rps=round(res.get("rps", 0), 1),
               p50_ms=res.get("latency_ms", {}).get("p50"), p99_ms=res.get("latency_ms", {}).get("p99"),
               server_cpu_us_per_req=round((c1[0] - c0[0]) / replies * 1e6, 2),
               rss_mb=round(mem_of([gw.proc.pid])[0] / 2**20, 1),
               reloads=len(hups), failed=failed_count(res), closed=int(e.get("closed", 0)),
               lost=int(e.get("lost", 0)), errors=error_summary(res), load=res,
               gateway_alive=gw.proc.poll() is None)
    except Exception as e:
        record(name, "failed", reason=str(e))
    finally:
        gw.stop()


def k6_scenario(backends):
    name = "k6_stages"
    if not want(name):
        return
    # The tutorial: 1 m to 100 VUs, 3 m to 1000, 1 m to 0 (5 minutes). Same
    # shape and users, time scaled to BENCH_SECONDS per minute.
    s = max(2.0, SECONDS)
    stages = f"100:{s:g},1000:{3 * s:g},0:{s:g}"
    gw = Gateway(name, backends=backends)
    say(f"- k6_stages: --stages {stages} (the tutorial's 1m/3m/1m, one minute = {s:g} s)")
    try:
        gw.start()
        c0 = cpu_of([gw.proc.pid])
        res = run_load(["--stages", stages, "--processes", "2", "--source-ips", "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4",
                        f"ws://127.0.0.1:{gw.port}/"], 5 * s + 90)
        c1 = cpu_of([gw.proc.pid])
        replies = max(int(res.get("replies", 0)), 1)
        record(name, "ok" if res.get("requests", 0) else "failed", stages=stages, rps=round(res.get("rps", 0), 1),
               p50_ms=res.get("latency_ms", {}).get("p50"), p99_ms=res.get("latency_ms", {}).get("p99"),
               server_cpu_us_per_req=round((c1[0] - c0[0]) / replies * 1e6, 2),
               rss_mb=round(mem_of([gw.proc.pid])[0] / 2**20, 1),
               failed=failed_count(res), errors=error_summary(res), load=res)
    except Exception as e:
        record(name, "failed", reason=str(e))
    finally:
        gw.stop()


def callgrind_profile(backends):
    """Where perf cannot sample: the gateway under callgrind (every process,
    --trace-children) for a short ws_tools_list run, then callgrind_annotate
    of the busiest worker."""
    gw = Gateway("callgrind", backends=backends, workers=1)
    for f in os.listdir(OUT):
        if f.startswith("callgrind.out."):
            os.unlink(os.path.join(OUT, f))
    try:
        gw.start(wrapper=["valgrind", "--tool=callgrind", "--trace-children=yes",
                          f"--callgrind-out-file={OUT}/callgrind.out.%p"])
        run_load(["--connections", "20", "--duration", "3", f"ws://127.0.0.1:{gw.port}/"], 120)
    finally:
        gw.stop()
    outs = [os.path.join(OUT, f) for f in os.listdir(OUT) if f.startswith("callgrind.out.")]
    if not outs:
        return []
    busiest = max(outs, key=os.path.getsize)
    r = subprocess.run(["callgrind_annotate", busiest], capture_output=True, text=True)
    with open(os.path.join(OUT, "profile-callgrind.txt"), "w") as f:
        f.write(r.stdout)
    return top_lines(r.stdout, 40)


# ------------------------------------------------------------ report


def by_name(n):
    for r in results:
        if r["scenario"] == n and r["status"] == "ok":
            return r
    return None


def testserver_result(request):
    """The result the test server gives for one request (over stdio), as
    compact JSON text: what the floor responder answers with."""
    r = subprocess.run([TESTSRV, "--stdio", "--log-level", "warn"], input=request + "\n", capture_output=True,
                       text=True, timeout=10)
    for line in r.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("id") == 1 and "result" in msg:
            return json.dumps(msg["result"], separators=(",", ":"), ensure_ascii=False)
    raise RuntimeError(f"the test server gave no result for {request}")


def floor_specs():
    """The floor responder (mcp-bridge-load --floor): a server that does
    nothing but answer each WebSocket request with the same result the test
    server gives. No gateway can be cheaper, so its req/s is the ceiling of
    this machine for the scenario, with the load generator on the same cores.
    Starts one per scenario and returns their specs."""
    cases = [("floor_ws_tools_list", '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', []),
             ("floor_ws_tools_call", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":'
              + ECHO_ARGS + '}}', ["--call", "echo", "--args", ECHO_ARGS])]
    out = []
    for name, request, load_args in cases:
        if not want(name):
            continue
        try:
            path = os.path.join(OUT, name + ".result.json")
            with open(path, "w") as f:
                f.write(testserver_result(request))
            p = start([LOADGEN, "--floor", "0", "--floor-result", path, "--threads", str(CORES)], name,
                      stdout=subprocess.PIPE, text=True)
            group_stops.append(lambda p=p: stop(p, signal.SIGTERM))
            line = p.stdout.readline().split()
            if len(line) != 4 or line[0] != "floor:":
                raise RuntimeError(f"the floor responder did not start (see build/bench/{name}.out)")
            port = int(line[3].rsplit(":", 1)[1])
        except Exception as e:
            record(name, "failed", reason=str(e))
            continue
        out.append(spec(name, f"ws://127.0.0.1:{port}/", [p.pid], load_args))
    return out


def ratios():
    out = {}
    pairs = [("ws_tools_list", "direct_ws_tools_list", "nginx_ws_tools_list", "floor_ws_tools_list"),
             ("ws_tools_list_cached", None, None, "floor_ws_tools_list")]
    for t in ("stdio", "http", "websocket"):
        pairs.append((f"ws_tools_call_{t}", "direct_ws_tools_call", "nginx_ws_tools_call", "floor_ws_tools_call"))
    pairs.append(("http_tools_call", "direct_http_tools_call", "nginx_http_tools_call", None))
    for g, d, n, fl in pairs:
        gr = by_name(g)
        if gr is None:
            continue
        for label, base in (("direct", by_name(d)), ("nginx", by_name(n)), ("floor", by_name(fl))):
            if base is None:
                continue
            out[f"{g}/{label}"] = {
                "baseline": base["scenario"],
                "rps": round(gr["rps"] / base["rps"], 3) if base["rps"] else None,
                "p99": round(gr["p99_ms"] / base["p99_ms"], 3) if base.get("p99_ms") else None,
                "server_cpu_per_req": round(gr["server_cpu_us_per_req"] / base["server_cpu_us_per_req"], 3)
                if base.get("server_cpu_us_per_req") else None,
            }
    return out


def targets(rat):
    t = {}
    calls = [r for r in (by_name(f"ws_tools_call_{x}") for x in ("stdio", "http", "websocket")) if r]
    ng = by_name("nginx_ws_tools_call")
    if calls and ng:
        best = max(calls, key=lambda r: r["rps"])
        t["ws_tools_call_nginx_parity"] = {
            "met": best["rps"] >= ng["rps"] and best["p99_ms"] <= ng["p99_ms"]
            and best["server_cpu_us_per_req"] <= 1.2 * ng["server_cpu_us_per_req"],
            "gateway": best["scenario"], "rps": best["rps"], "nginx_rps": ng["rps"],
            "p99_ms": best["p99_ms"], "nginx_p99_ms": ng["p99_ms"],
            "cpu_us": best["server_cpu_us_per_req"], "nginx_cpu_us": ng["server_cpu_us_per_req"]}
    else:
        t["ws_tools_call_nginx_parity"] = {"met": None, "why": "no ws_tools_call scenario ran (backends not accepted yet)"}
    for x in ("stdio", "http", "websocket"):
        r = by_name(f"ws_tools_call_{x}")
        if r and ng:
            t[f"ws_tools_call_{x}_nginx_parity"] = {
                "met": r["rps"] >= ng["rps"] and r["p99_ms"] <= ng["p99_ms"]
                and r["server_cpu_us_per_req"] <= 1.2 * ng["server_cpu_us_per_req"],
                "rps_x": round(r["rps"] / ng["rps"], 2), "p99_x": round(r["p99_ms"] / ng["p99_ms"], 2),
                "cpu_x": round(r["server_cpu_us_per_req"] / ng["server_cpu_us_per_req"], 2)}
    # Issue 4: answered by the gateway, from the discovery cache once it exists.
    # The floor responder's req/s says what this machine allows at all.
    wl = by_name("ws_tools_list_cached") or by_name("ws_tools_list")
    fl = by_name("floor_ws_tools_list")
    t["ws_tools_list_100k"] = ({"met": wl["rps"] >= 100000, "scenario": wl["scenario"], "rps": wl["rps"],
                                "missing_factor": round(100000 / wl["rps"], 2)} if wl and wl.get("rps") else {"met": None})
    if fl and wl and wl.get("rps"):
        t["ws_tools_list_100k"].update({"floor_rps": fl["rps"], "of_floor": round(wl["rps"] / fl["rps"], 2)})
    i50 = by_name("idle_50k")
    t["idle_50k_under_256MB"] = ({"met": i50["connections"] >= 50000 and i50["rss_mb"] < 256, "rss_mb": i50["rss_mb"],
                                 "connections": i50["connections"]} if i50 else {"met": None})
    rl = by_name("reload")
    t["reload_0_failures"] = ({"met": rl["failed"] == 0 and rl["closed"] == 0, "failed": rl["failed"], "closed": rl["closed"],
                              "reloads": rl["reloads"]} if rl else {"met": None})
    return t


def fmt(v, spec):
    if isinstance(v, (int, float)):
        return format(v, spec)
    width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
    return "-".rjust(int(width or 1))


def print_table():
    say("")
    say(f"{'scenario':26} {'status':8} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'cpu µs/req':>10} {'bknd µs':>8} {'RSS MB':>7} {'other%':>6}  errors / notes")
    for r in results:
        if r["status"] != "ok":
            say(f"{r['scenario']:26} {r['status']:8} {'':>9} {'':>7} {'':>7} {'':>10} {'':>8} {'':>7} {'':>6}  {r.get('reason', '')[:90]}")
            continue
        extra = r.get("errors", "")
        if r["scenario"].startswith("idle"):
            extra = f"{r['connections']} held, {r['bytes_per_conn']} B/conn over a {r['rss_baseline_mb']} MB baseline, {r['workers']} workers"
        if r["scenario"] == "reload":
            extra = f"{r['reloads']} reloads, failed={r['failed']} closed={r['closed']} lost={r['lost']}"
        say(f"{r['scenario']:26} {'ok':8} {fmt(r.get('rps'), '9.0f')} {fmt(r.get('p50_ms'), '7.2f')} {fmt(r.get('p99_ms'), '7.2f')} "
            f"{fmt(r.get('server_cpu_us_per_req'), '10.1f')} {fmt(r.get('backend_cpu_us_per_req'), '8.1f')} "
            f"{fmt(r.get('rss_mb'), '7.1f')} {fmt(r.get('other_cpu_pct'), '6.0f')}  {extra}")


def main():
    global profiler
    os.makedirs(OUT, exist_ok=True)
    for prog in (GATEWAY, TESTSRV, LOADGEN):
        if not os.access(prog, os.X_OK):
            say(f"bench: {prog} is missing: run make first")
            return 2
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    t_start = time.time()
    la0 = loadavg()
    say(f"bench: {CORES} cores, load average {la0[0]:.2f} before starting, {SECONDS:g} s per scenario, build {BUILD}")
    if la0[0] > 0.5:
        note(f"the machine is shared: load average {la0[0]:.2f} before the run; the column other% is CPU used by processes that are not ours")
    if PROFILE:
        profiler = pick_profiler()

    ts, ts_http, ts_ws = start_testserver()
    say(f"test server: pid {ts.pid}, http {ts_http}, ws {ts_ws}")
    http_tag = [ts.pid]

    # Which backend config the gateway-only scenarios use: the stdio test
    # server once the loader takes backends (tools/list then aggregates it).
    probe = Gateway("probe", backends=[stdio_backend()])
    list_backends = [stdio_backend()] if probe.check() is None else None
    if list_backends is None:
        note("the gateway has no backends in ws_tools_list/reload/k6_stages: the config loader rejects them (" + probe.check() + ")")

    # 1. ws_tools_list, and 3. the Streamable HTTP probe on the same gateway.
    # Without the discovery cache every tools/list fans out to the backend;
    # ws_tools_list_cached is the same load answered from shared memory.
    gw = Gateway("ws_tools_list", backends=list_backends, extra=["caching:", "  enabled: false"])
    try:
        gw.start()
        measure("ws_tools_list", f"ws://127.0.0.1:{gw.port}/", [gw.proc.pid], [], profile_pids=gw.pids() if PROFILE else None)
        http_why = probe_streamable_http(gw.port)
    finally:
        gw.stop()
    # The comparison group: the gateway scenarios the issue's targets compare
    # and their baselines (direct, floor, nginx), every server up at once and
    # measured in alternating rounds (measure_rounds).
    call = ["--call", "echo", "--args", ECHO_ARGS]
    try:
        group = []
        if list_backends is not None:
            group.append(gateway_spec("ws_tools_list_cached", list_backends, [], what="the cache config"))
        for transport, lines, tag in (("stdio", stdio_backend(), []), ("http", http_backend(ts_http), http_tag),
                                      ("websocket", ws_backend(ts_ws), http_tag)):
            group.append(gateway_spec(f"ws_tools_call_{transport}", [lines], call, tag,
                                      what=f"a {transport} backend"))
        group += floor_specs()
        for name, url, args in (("direct_ws_tools_list", f"ws://127.0.0.1:{ts_ws}/", []),
                                ("direct_ws_tools_call", f"ws://127.0.0.1:{ts_ws}/", call),
                                ("direct_http_tools_call", f"http://127.0.0.1:{ts_http}/mcp", ["--init"] + call)):
            if want(name):
                group.append(spec(name, url, [ts.pid], args, direct=True))
        nginx_names = ("nginx_ws_tools_list", "nginx_ws_tools_call", "nginx_http_tools_call")
        if any(want(n) for n in nginx_names):
            ng, ng_port, why = start_nginx(ts_http, ts_ws)
            if ng is None:
                for n in nginx_names:
                    record(n, "skipped", reason=why)
            else:
                group_stops.append(lambda: stop(ng, signal.SIGQUIT))
                say(f"nginx: pid {ng.pid}, port {ng_port} (own config build/bench/nginx/nginx.conf)")
                for name, url, args in ((nginx_names[0], f"ws://127.0.0.1:{ng_port}/ws/", []),
                                        (nginx_names[1], f"ws://127.0.0.1:{ng_port}/ws/", call),
                                        (nginx_names[2], f"http://127.0.0.1:{ng_port}/mcp", ["--init"] + call)):
                    if want(name):
                        group.append(spec(name, url, [ng.pid, ts.pid], args))
        group = [g for g in group if g]
        rounds = 1 if PROFILE else ROUNDS
        if group:
            say(f"comparison group: {len(group)} scenarios in {rounds} alternating rounds of {SECONDS / rounds:g} s each")
        measure_rounds(group, rounds)
    finally:
        while group_stops:
            group_stops.pop()()

    if list_backends is not None:
        cached_scenario("ws_tools_call_cached", [stdio_backend() + ["  cache_tools: [echo]"]], call)

    # 3. http_tools_call
    if want("http_tools_call"):
        if http_why is not None:
            record("http_tools_call", "skipped", reason=f"the gateway does not serve Streamable HTTP yet (POST /mcp initialize: {http_why})")
        elif list_backends is None:
            record("http_tools_call", "skipped", reason="Streamable HTTP is served but backends are not accepted yet")
        else:
            gw = Gateway("http_tools_call", backends=[stdio_backend()])
            try:
                gw.start()
                measure("http_tools_call", f"http://127.0.0.1:{gw.port}/mcp", [gw.proc.pid],
                        ["--init"] + call, profile_pids=gw.pids() if PROFILE else None)
            finally:
                gw.stop()

    # 6. idle
    idle_scenario("idle_10k", 10000)
    idle_scenario("idle_50k", 50000)

    # 7. reload, 8. k6
    reload_scenario(list_backends)
    k6_scenario(list_backends)

    if profiler == "callgrind":
        say("- callgrind: the gateway under valgrind for a 3 s ws_tools_list run")
        try:
            record("callgrind_ws_tools_list", "profiled", reason="see build/bench/profile-callgrind.txt",
                   profile_top=callgrind_profile(list_backends))
        except Exception as e:
            record("callgrind_ws_tools_list", "failed", reason=str(e))

    stop_all()
    elapsed = time.time() - t_start
    rat = ratios()
    tg = targets(rat)
    print_table()
    if rat:
        say("\nratios (gateway / baseline, same run):")
        for k, v in rat.items():
            say(f"  {k:40} req/s x{fmt(v['rps'], '.2f')}  p99 x{fmt(v['p99'], '.2f')}  server CPU/req x{fmt(v['server_cpu_per_req'], '.2f')}")
    say("\ntargets (issue 4, 'Then: make it fast'):")
    for k, v in tg.items():
        say(f"  {k:30} {'met' if v.get('met') else ('not met' if v.get('met') is False else 'not measured')}  "
            + " ".join(f"{a}={b}" for a, b in v.items() if a != "met"))
    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cores": CORES,
        "kernel": os.uname().release,
        "loadavg_before": la0,
        "loadavg_after": loadavg(),
        "seconds_per_scenario": SECONDS,
        "connections": CONNS,
        "elapsed_s": round(elapsed, 1),
        "profile": profiler,
        "notes": notes,
        "scenarios": results,
        "ratios": rat,
        "targets": tg,
    }
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    if PROFILE and profiler:
        with open(os.path.join(OUT, "profile.txt"), "w") as f:
            for r in results:
                if r.get("profile_top"):
                    how = "perf, cpu-clock, gateway processes" if profiler == "perf" else "callgrind, instructions"
                    f.write(f"== {r['scenario']} ({how}; full report build/bench/profile-{r['scenario'].replace('callgrind_ws_tools_list', 'callgrind')}.txt)\n")
                    f.write("\n".join(r["profile_top"]) + "\n\n")
        say("profile: build/bench/profile.txt")
    say(f"\nwrote build/bench/results.json ({elapsed:.0f} s in all)")
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        stop_all()
    sys.exit(rc)
