#!/usr/bin/env python3
"""Benchmark the shop on the release host: seed products, drive GET detail and GET list with wrk.

    python3 scripts/bench.py                 # SQLite and Postgres, 1,000 products, 32 connections, 10 s
    python3 scripts/bench.py --engine sqlite --duration 5

Prints requests/s, p50/p99 latency (from wrk --latency) and the host's RSS for each run.
Needs `wrk` (Debian package) and, for Postgres, `psql` and a server (SHOP_BENCH_POSTGRES).
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-secret-0123456789abcdef0123"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def staff_token() -> str:
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": "1", "iat": now, "exp": now + 3600, "jti": "bench", "token_type": "access", "is_staff": True}
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(sig)}"


def build():
    subprocess.run(["cargo", "build", "--release", "-p", "shop"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2", "-p", "products"], cwd=ROOT, check=True)


def start_host(extra, workdir):
    env = dict(os.environ, SPIN_VARIABLE_JWT_SECRET=SECRET, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    log = open(os.path.join(workdir, "host.log"), "w")
    proc = subprocess.Popen(
        [os.path.join(ROOT, "target/release/shop"), "up", "--manifest", os.path.join(ROOT, "spin.toml"),
         "--listen", "127.0.0.1:0", *extra],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    for line in proc.stdout:
        m = re.match(r"\s*Serving (http://\S+)", line)
        if m:
            base = m.group(1).rstrip("/")
            # Drain the rest of stdout (per-request logs) so the host never blocks on a full pipe.
            subprocess.Popen(["cat"], stdin=proc.stdout, stdout=log)
            return proc, base
    raise SystemExit(f"host did not start; see {workdir}/host.log")


def request(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req) as res:
        return json.loads(res.read() or b"null")


def seed(base, n):
    token = staff_token()
    ids = []
    for i in range(n):
        p = request("POST", f"{base}/api/products/", token,
                    {"name": f"Bench product {i}", "description": "seeded for the benchmark", "price": f"{i % 500}.99", "stock": i % 50})
        ids.append(p["id"])
    return ids


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def wrk(url, connections, duration, script=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return rps, lat.get("50"), lat.get("99"), int(errors.group(1)) if errors else 0, socket_errors.group(1) if socket_errors else ""


def fresh_postgres():
    server = os.environ.get("SHOP_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    name = f"shop_bench_{os.getpid()}"
    subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
    subprocess.run(["psql", f"{server}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    return f"{server}/{name}", lambda: subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"])


def bench_engine(engine, args):
    workdir = tempfile.mkdtemp(prefix=f"shop-bench-{engine}-")
    extra, cleanup = [], (lambda: None)
    if engine == "postgres":
        url, cleanup = fresh_postgres()
        extra = ["--database-url", url]
    proc, base = start_host(extra, workdir)
    try:
        ids = seed(base, args.products)
        lo, hi = min(ids), max(ids)
        script = os.path.join(workdir, "detail.lua")
        with open(script, "w") as f:
            f.write(f'request = function()\n  return wrk.format("GET", "/api/products/" .. math.random({lo}, {hi}) .. "/")\nend\n')
        rows = []
        for label, url, s in [("GET /api/products/{id}/", f"{base}/api/products/", script),
                              ("GET /api/products/?page_size=20", f"{base}/api/products/?page_size=20", None)]:
            rps, p50, p99, non2xx, sock = wrk(url, args.connections, args.duration, s)
            rss, hwm = rss_kib(proc.pid)
            rows.append((engine, label, rps, p50, p99, non2xx, sock, rss, hwm))
        return rows
    finally:
        proc.terminate()
        proc.wait()
        cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    if not args.no_build:
        build()
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    rows = [row for engine in engines for row in bench_engine(engine, args)]
    print(f"\n{args.products} products, wrk -t2 -c{args.connections} -d{args.duration}s, host and wrk on this machine ({os.cpu_count()} cores)")
    print(f"{'engine':9} {'request':34} {'req/s':>9} {'p50':>9} {'p99':>9} {'non-2xx':>8} {'RSS MiB':>8} {'peak MiB':>8}")
    for engine, label, rps, p50, p99, non2xx, sock, rss, hwm in rows:
        print(f"{engine:9} {label:34} {rps:9.0f} {p50:>9} {p99:>9} {non2xx:8d} {rss / 1024:8.1f} {hwm / 1024:8.1f}" + (f"  socket errors: {sock}" if sock else ""))


if __name__ == "__main__":
    main()
