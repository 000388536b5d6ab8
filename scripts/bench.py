#!/usr/bin/env python3
"""Benchmarks: visitor-session beside tower-sessions and a bare service.

Run through `bash scripts/bench` (which installs wrk and redis-server and
builds the release binaries). A full run prints the load table, then the
instructions redis-server executes per request (`redis_cost_table`), then
the in-process table (`in_process`). For each load scenario the contenders run in turn
(A B A B ...), three rounds, each driven by `wrk -t1 -c32`; the table gives
medians. A contender is `<layer>` (on the one real redis-server, on
loopback) or `<layer>@<store>`: `@sqlite` a SQLite file of its own (WAL,
`synchronous = NORMAL` for both layers), `@sqlite-fsync` ours with
`Durability::PowerLoss` (`synchronous = FULL`), `@memory` the memory store.

- req/s and latency (p50, p99): from wrk;
- round trips per request: commands the service sent to Redis, counted with
  MONITOR in a short separate phase (one connection, one second), leaving
  out the commands scripts run inside Redis (tagged `lua`);
- CPU per request of the service and of redis-server: utime + stime deltas
  from /proc/<pid>/stat over the load, divided by the requests served.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "target", "release", "bench_server")
TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")

# scenario: (description, path, visitor kind, contenders)
# `ours-pool`: our layer on an application's deadpool-redis pool
# (`RedisConfig::from_source`) instead of connections of its own;
# `ours-nostats`: our layer without the per-network statistics (SPEC §3.6,
# `SessionConfig::network_statistics(false)`), to show what they cost.
EMBEDDED = ["ours@sqlite", "tower-sessions@sqlite", "ours@sqlite-fsync", "ours@memory", "ours@redis"]
SCENARIOS = [
    ("returning visitor, SQLite beside the other stores", "/", "returning", EMBEDDED),
    ("new visitor, SQLite beside the other stores", "/", "new", EMBEDDED),
    ("returning visitor", "/", "returning", ["ours", "ours-pool", "tower-sessions"]),
    ("new visitor", "/", "new", ["ours", "ours-nostats", "tower-sessions"]),
    ("returning visitor, handler writes one key", "/write", "returning", ["ours", "ours-pool", "tower-sessions"]),
    ("total-privacy visitor without cookie", "/quiet", "new", ["ours-privacy", "tower-sessions", "bare", "bare-layered"]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"{what} did not listen on {port}")


def cpu_us(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) * TICK_US


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout


def on_redis(contender):
    return contender.partition("@")[2] in ("", "redis")


def label(contender):
    """How a contender is named in the tables."""
    layer, _, store = contender.partition("@")
    if not store:
        return {"ours-nostats": "ours, network statistics off"}.get(contender, contender)
    return {
        "sqlite": f"{layer}, SqliteStore" if layer == "ours" else f"{layer}, its SQLite store",
        "sqlite-fsync": f"{layer}, SqliteStore with Durability::PowerLoss",
        "memory": f"{layer}, MemoryStore",
        "redis": f"{layer}, RedisStore",
    }[store]


class Server:
    def __init__(self, contender, redis_url, env=None):
        self.port = free_port()
        self.dir = None
        layer, _, store = contender.partition("@")
        if store == "memory":
            where = "memory"
        elif store and store != "redis":
            # A fresh file per run, so that runs do not inherit each other's rows.
            self.dir = tempfile.mkdtemp(prefix="vs-bench-")
            where = f"{store}:{os.path.join(self.dir, 'sessions.db')}"
        else:
            where = redis_url
        self.proc = subprocess.Popen(
            [SERVER, layer, where, str(self.port)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        wait_port(self.port, self.proc, contender)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def new_cookies(port, n):
    """Sessions of n returning visitors: the cookie of a first visit each."""
    cookies = []
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/")
        res = conn.getresponse()
        res.read()
        for name, value in res.getheaders():
            if name.lower() == "set-cookie":
                cookies.append(value.split(";", 1)[0])
                break
        conn.close()
    if len(cookies) != n:
        sys.exit("the server did not set a session cookie on a first visit")
    return cookies


def wrk_args(path, cookie):
    """wrk's request: one visitor's cookie (or none) on every request, so
    wrk itself spends no CPU on building requests."""
    headers = ["-H", f"Cookie: {cookie}"] if cookie else []
    return headers, path


def duration_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port, request, seconds, connections):
    headers, path = request
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *headers, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = duration_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = duration_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"wrk saw {non2xx.group(1)} error responses:\n{out}")
    return requests, rps, p50, p99


def measure(contender, redis_port, path, visitors, seconds, env=None):
    redis_cli(redis_port, "FLUSHALL")
    server = Server(contender, f"redis://127.0.0.1:{redis_port}", env)
    try:
        cookie = new_cookies(server.port, 1)[0] if visitors == "returning" else None
        script = wrk_args(path, cookie)
        redis_pid = int(redis_cli(redis_port, "INFO", "server").split("process_id:")[1].split()[0])
        run_wrk(server.port, script, 1, 32)  # warm-up
        s0, r0 = cpu_us(server.proc.pid), cpu_us(redis_pid)
        requests, rps, p50, p99 = run_wrk(server.port, script, seconds, 32)
        s1, r1 = cpu_us(server.proc.pid), cpu_us(redis_pid)
        return {
            "rps": rps,
            "p50": p50,
            "p99": p99,
            "cpu_service": (s1 - s0) / requests,
            "cpu_redis": (r1 - r0) / requests,
        }
    finally:
        server.stop()


def round_trips(contender, redis_port, path, visitors):
    """Commands per request sent by the service, from MONITOR, one connection."""
    if not on_redis(contender):
        return None
    redis_cli(redis_port, "FLUSHALL")
    server = Server(contender, f"redis://127.0.0.1:{redis_port}")
    try:
        cookie = new_cookies(server.port, 1)[0] if visitors == "returning" else None
        script = wrk_args(path, cookie)
        run_wrk(server.port, script, 1, 1)  # warm-up: scripts cached, pool open
        with tempfile.TemporaryFile("w+") as log:
            monitor = subprocess.Popen(["redis-cli", "-p", str(redis_port), "MONITOR"], stdout=log)
            time.sleep(0.3)
            requests, *_ = run_wrk(server.port, script, 1, 1)
            time.sleep(0.3)
            monitor.terminate()
            monitor.wait()
            log.seek(0)
            sent = [l for l in log if '"' in l and " lua]" not in l]
        return len(sent) / requests
    finally:
        server.stop()


# Scenarios of the redis-server instruction count (path, visitor kind,
# contenders).
REDIS_COST_SCENARIOS = [
    ("returning visitor", "/", "returning", ["ours", "tower-sessions"]),
    ("new visitor", "/", "new", ["ours", "ours-nostats", "tower-sessions"]),
    ("returning visitor, handler writes one key", "/write", "returning", ["ours", "tower-sessions"]),
]


def redis_instructions(contender, path, visitors, counts=(200, 1200)):
    """Instructions redis-server executes per request of `contender`: a
    redis-server of its own under callgrind (counted, so repeatable on a
    noisy machine, unlike CPU time), the requests sent one after the other
    over one connection; (I(n2) - I(n1)) / (n2 - n1), so that start-up,
    the first visit and the scripts' loading cancel out."""
    totals = []
    for n in counts:
        port = free_port()
        with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
            redis = subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
                 "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--hz", "1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            wait_port(port, redis, "redis-server under callgrind")
            server = Server(contender, f"redis://127.0.0.1:{port}")
            try:
                cookie = new_cookies(server.port, 1)[0] if visitors == "returning" else None
                headers = {"Cookie": cookie} if cookie else {}
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                for _ in range(n):
                    conn.request("GET", path, headers=headers)
                    res = conn.getresponse()
                    res.read()
                    if res.status != 200:
                        sys.exit(f"{contender} answered {res.status} under callgrind")
                conn.close()
            finally:
                server.stop()
            redis_cli(port, "SHUTDOWN", "NOSAVE")
            redis.wait()
            with open(out.name) as f:
                total = next(int(l.split()[1]) for l in f if l.startswith(("summary:", "totals:")))
        totals.append(total)
    return (totals[1] - totals[0]) / (counts[1] - counts[0])


def redis_cost_table():
    """The table of redis-server instructions per request."""
    print("Instructions redis-server executes per request (callgrind; a redis-server of its own per "
          "count, requests one after the other over one connection, 200 and 1 200 requests, the "
          "difference divided by 1 000):\n")
    print("| scenario | contender | redis-server instructions / request |")
    print("|---|---|---:|")
    per = {}
    for name, path, visitors, contenders in REDIS_COST_SCENARIOS:
        for contender in contenders:
            per[(name, contender)] = redis_instructions(contender, path, visitors)
            print(f"| {name} | {label(contender)} | {per[(name, contender)]:.0f} |")
    print()
    for name, _, _, contenders in REDIS_COST_SCENARIOS:
        for contender in contenders[:-1]:
            ratio = per[(name, contender)] / per[(name, "tower-sessions")]
            print(f"- {name}: {label(contender)} / tower-sessions = {ratio:.2f}x redis-server instructions")


IN_PROCESS_CASES = [
    "bare",
    "ours returning visitor",
    "tower-sessions returning visitor",
    "ours new visitor",
    "tower-sessions new visitor",
    "ours returning visitor, handler writes one key",
    "tower-sessions returning visitor, handler writes one key",
    "bare quiet page",
    "bare quiet page behind a no-op layer",
    "bare quiet page behind a layer that only hands out a handle",
    "ours total-privacy visitor without cookie",
]


def in_process(args):
    """The in-process table: criterion time, instructions (callgrind) and
    allocations per request, and the overheads over bare as ratios."""
    build = subprocess.run(
        ["cargo", "bench", "-p", "visitor-session-benches", "--bench", "in_process", "--no-run"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    exe = re.search(r"Executable .*\((.*)\)", build.stderr).group(1)
    exe = os.path.join(ROOT, exe) if not os.path.isabs(exe) else exe

    def instructions(case, n):
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", exe],
            env={**os.environ, "VS_BENCH_CASE": case, "VS_BENCH_ITERATIONS": str(n)},
            capture_output=True, text=True,
        ).stderr
        return int(re.search(r"Collected : (\d+)", out).group(1))

    ir = {}
    for case in IN_PROCESS_CASES:
        ir[case] = (instructions(case, 2000) - instructions(case, 0)) / 2000
    out = subprocess.run([exe], env={**os.environ, "VS_BENCH_PAIRED": "200"},
                         capture_output=True, text=True, check=True).stdout
    paired = {case: float(re.search(rf"^paired {re.escape(case)}: ([\d.]+)$", out, re.M).group(1))
              for case in IN_PROCESS_CASES}
    times = {case: [] for case in IN_PROCESS_CASES}
    allocs = {}
    for _ in range(args.rounds):
        out = subprocess.run(
            [exe, "--bench", "--warm-up-time", "1", "--measurement-time", str(args.seconds)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout
        for case in IN_PROCESS_CASES:
            allocs[case] = float(re.search(rf"^  {re.escape(case)}: ([\d.]+)$", out, re.M).group(1))
            est = os.path.join(ROOT, "target", "criterion", "request", case, "new", "estimates.json")
            with open(est) as f:
                times[case].append(json.load(f)["median"]["point_estimate"])
    per_session = re.search(r"MemoryStore bytes per idle temporary session \(no data\): (\d+)", out).group(1)
    ns = {case: statistics.median(times[case]) for case in IN_PROCESS_CASES}

    print(f"Taken {time.strftime('%Y-%m-%d')} with `bash scripts/bench --in-process` on {os.cpu_count()} cores; "
          f"criterion: medians of {args.rounds} runs, one case after the other; side by side: the cases "
          "in turn, 200 requests each, 200 cycles, medians; instructions: callgrind, 2000 requests; "
          "allocations: a counting allocator, 20 000 requests.\n")
    print("| case | ns / request (criterion) | ns / request (side by side) | instructions / request | allocations / request |")
    print("|---|---:|---:|---:|---:|")
    for case in IN_PROCESS_CASES:
        print(f"| {case} | {ns[case]:.0f} | {paired[case]:.0f} | {ir[case]:.0f} | {allocs[case]:.1f} |")
    print()

    def overhead(measure, case, base):
        return measure[case] - measure[base]

    for label, measure in (("time side by side", paired), ("instructions", ir), ("criterion time", ns)):
        ours = overhead(measure, "ours returning visitor", "bare")
        theirs = overhead(measure, "tower-sessions returning visitor", "bare")
        privacy = measure["ours total-privacy visitor without cookie"] / measure["bare quiet page"]
        layered = measure["bare quiet page behind a no-op layer"] / measure["bare quiet page"]
        print(f"- {label}: our overhead over bare for a returning visitor is {ours / theirs:.2f} of "
              f"tower-sessions' ({ours:.0f} vs {theirs:.0f}); a total-privacy visitor without cookie "
              f"costs {privacy:.2f}x bare (a no-op layer: {layered:.2f}x)")
    print(f"- MemoryStore keeps {per_session} bytes per idle temporary session without data")
    for ours, theirs in (("ours new visitor", "tower-sessions new visitor"),
                         ("ours returning visitor, handler writes one key",
                          "tower-sessions returning visitor, handler writes one key")):
        print(f"- instructions, {ours[5:]}: ours {ir[ours]:.0f}, tower-sessions {ir[theirs]:.0f} "
              f"({ir[ours] / ir[theirs]:.2f}x)")
    quiet, layered = ir["ours total-privacy visitor without cookie"], ir["bare quiet page behind a no-op layer"]
    print(f"- instructions, total-privacy visitor without cookie: {quiet:.0f} against {layered:.0f} for the "
          f"same page behind a no-op layer (+{100 * (quiet / layered - 1):.0f}%; target: within 10%)")
    floor = ir["bare quiet page behind a layer that only hands out a handle"]
    print(f"- instructions, the floor of a layer that reads the cookie header and hands the handler a "
          f"handle it sees again: {floor:.0f} (+{100 * (floor / layered - 1):.0f}% over the no-op layer)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=4, help="length of each measured run (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per contender (default 3)")
    parser.add_argument("--only", help="run only the scenarios whose name contains this text")
    parser.add_argument("--pool-sizes", help="instead: returning visitors on our layer with each of these "
                        "RedisConfig::pool_size values (comma-separated), alternating")
    parser.add_argument("--in-process", action="store_true", help="instead: only the in-process benchmark "
                        "(criterion, callgrind, allocations) without network, which a full run prints after "
                        "the load table")
    parser.add_argument("--redis-instructions", action="store_true", help="instead: only the table of "
                        "instructions redis-server executes per request (callgrind), which a full run prints "
                        "after the load table")
    args = parser.parse_args()
    if args.in_process:
        return in_process(args)
    if args.redis_instructions:
        return redis_cost_table()
    load(args)
    if not args.only and not args.pool_sizes:
        print()
        redis_cost_table()
        print()
        in_process(args)


def load(args):
    """The load table (or, with --pool-sizes, the connections table)."""

    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    wait_port(redis_port, redis, "redis-server")
    rows = []
    try:
        if args.pool_sizes:
            sizes = args.pool_sizes.split(",")
            results = {size: [] for size in sizes}
            for _ in range(args.rounds):
                for size in sizes:
                    results[size].append(measure("ours", redis_port, "/", "returning", args.seconds,
                                                 {"BENCH_POOL_SIZE": size}))
            print("| pool_size | req/s | p50 ms | p99 ms | CPU µs/req service | CPU µs/req redis-server |")
            print("|---:|---:|---:|---:|---:|---:|")
            for size in sizes:
                med = {k: statistics.median(r[k] for r in results[size]) for k in results[size][0]}
                print(f"| {size} | {med['rps']:.0f} | {med['p50']:.2f} | {med['p99']:.2f} | "
                      f"{med['cpu_service']:.1f} | {med['cpu_redis']:.1f} |")
            return
        for name, path, visitors, contenders in SCENARIOS:
            if args.only and args.only not in name:
                continue
            results = {c: [] for c in contenders}
            for _ in range(args.rounds):
                for contender in contenders:
                    results[contender].append(measure(contender, redis_port, path, visitors, args.seconds))
            for contender in contenders:
                med = {k: statistics.median(r[k] for r in results[contender]) for k in results[contender][0]}
                med["round_trips"] = round_trips(contender, redis_port, path, visitors)
                rows.append((name, contender, med))
                print(f"  {name} / {contender}: {med['rps']:.0f} req/s", file=sys.stderr)
    finally:
        redis.kill()
        redis.wait()

    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    print(f"Taken {time.strftime('%Y-%m-%d')} with `bash scripts/bench` on {os.cpu_count()} cores "
          f"({cpu}) shared by wrk, the service and redis-server {redis_version.split('=')[-1]}, over loopback; "
          f"SQLite files on the local disk ({tempfile.gettempdir()}); "
          f"wrk -t1 -c32 -d{args.seconds}s per run, {args.rounds} rounds alternating the contenders, medians.\n")
    print("| scenario | contender | req/s | p50 ms | p99 ms | Redis round trips / req | CPU µs/req service | CPU µs/req redis-server |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, contender, m in rows:
        trips = "-" if m["round_trips"] is None else f"{m['round_trips']:.2f}"
        redis_cpu = f"{m['cpu_redis']:.1f}" if on_redis(contender) else "-"
        print(f"| {name} | {label(contender)} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
              f"{trips} | {m['cpu_service']:.1f} | {redis_cpu} |")
    print()
    by = {(n, c): m for n, c, m in rows}
    for name, _, _, contenders in SCENARIOS:
        if (name, "ours@sqlite") in by and (name, "tower-sessions@sqlite") in by:
            ours, theirs = by[(name, "ours@sqlite")], by[(name, "tower-sessions@sqlite")]
            print(f"- {name}: SqliteStore / tower-sessions' SQLite store = {ours['rps'] / theirs['rps']:.2f}x "
                  f"req/s (service CPU per request: {ours['cpu_service']:.1f} µs against "
                  f"{theirs['cpu_service']:.1f} µs)")
            continue
        if (name, "ours") in by and (name, "ours-pool") in by:
            ratio = by[(name, "ours-pool")]["rps"] / by[(name, "ours")]["rps"]
            print(f"- {name}: on the application's deadpool-redis pool / on our own connections = "
                  f"{ratio:.2f}x req/s")
        ours = next((c for c in contenders if c.startswith("ours")), None)
        if (name, ours) in by and (name, "tower-sessions") in by:
            ratio = by[(name, ours)]["rps"] / by[(name, "tower-sessions")]["rps"]
            print(f"- {name}: ours / tower-sessions = {ratio:.2f}x req/s")
        if (name, ours) in by and (name, "bare") in by:
            ratio = by[(name, ours)]["rps"] / by[(name, "bare")]["rps"]
            print(f"- {name}: ours / bare = {ratio:.2f}x req/s")
        if (name, ours) in by and (name, "bare-layered") in by:
            ratio = by[(name, ours)]["rps"] / by[(name, "bare-layered")]["rps"]
            floor = by[(name, "bare-layered")]["rps"] / by[(name, "bare")]["rps"]
            print(f"- {name}: ours / bare behind a no-op layer = {ratio:.2f}x req/s "
                  f"(the no-op layer alone: {floor:.2f}x bare)")


if __name__ == "__main__":
    main()
