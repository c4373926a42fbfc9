#!/usr/bin/env python3
"""Benchmark the shop on the release host: seed products, drive GET detail and GET list with wrk.

    python3 scripts/bench.py                 # every scenario, SQLite and Postgres
    python3 scripts/bench.py --engine sqlite --duration 5 --scenario products

Scenarios: `products` (GET detail and list over 1,000 products, wrk at 32 connections), `login`
(Argon2id logins: sequential latency, then wrk at 4 connections), `orders` (16 buyer threads, each
filling a cart and placing an order in a loop: orders/s and p50/p99 of the placement).

Prints requests/s, p50/p99 latency (from wrk --latency) and the host's RSS for each run.

`--baseline` (products scenario, SQLite): after the host's runs, starts tools/native-baseline (a
plain native server answering the same two reads from the same SQL) on the host's own products
database, checks that it answers as the host does, runs the same two wrk loads against it and
prints host/native ratios: absolute figures depend on the machine, the ratio much less.
Needs `wrk` (Debian package), `openssl` (for the Ed25519 key that signs the bench's tokens) and,
for Postgres, `psql` and a server (SHOP_BENCH_POSTGRES).
"""
import argparse
import atexit
import base64
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The host under test (`--host-binary`: e.g. an earlier build, to compare two in one run).
HOST_BINARY = os.path.join(ROOT, "target/release/shop")
# The native baseline of `--baseline` (tools/native-baseline: bench tooling, not the product).
BASELINE_BINARY = os.path.join(ROOT, "target/release/native-baseline")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@functools.lru_cache(maxsize=None)
def jwt_keys():
    """The bench's Ed25519 key pair, made once per run: (key file, private PEM, public PEM)."""
    folder = tempfile.mkdtemp(prefix="shop-bench-key-")
    atexit.register(shutil.rmtree, folder, True)
    key = os.path.join(folder, "jwt.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True)
    public = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True, capture_output=True, text=True).stdout
    with open(key) as f:
        return key, f.read(), public


def sign_token(claims) -> str:
    """An EdDSA JWT of `claims`, signed as the accounts service signs (with the bench's key)."""
    header = b64(json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    key = jwt_keys()[0]
    with tempfile.TemporaryDirectory() as folder:
        message, signature = os.path.join(folder, "message"), os.path.join(folder, "signature")
        with open(message, "w") as f:
            f.write(f"{header}.{body}")
        subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", message, "-out", signature], check=True)
        with open(signature, "rb") as f:
            return f"{header}.{body}.{b64(f.read())}"


def staff_token() -> str:
    now = int(time.time())
    return sign_token({"sub": "1", "iat": now, "exp": now + 3600, "jti": "bench", "token_type": "access", "is_staff": True})


def build(baseline=False):
    subprocess.run(["cargo", "build", "--release", "-p", "shop"], cwd=ROOT, check=True)
    if baseline:
        subprocess.run(["cargo", "build", "--release", "-p", "native-baseline"], cwd=ROOT, check=True)
    components = ["-p", "products", "-p", "accounts", "-p", "cart", "-p", "orders", "-p", "docs", "-p", "console"]
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2", *components], cwd=ROOT, check=True)


def start_host(extra, workdir):
    _, private_key, public_key = jwt_keys()
    env = dict(os.environ, SPIN_VARIABLE_JWT_PRIVATE_KEY=private_key, SPIN_VARIABLE_JWT_PUBLIC_KEY=public_key,
               RUST_LOG=os.environ.get("RUST_LOG", "info"))
    log = open(os.path.join(workdir, "host.log"), "w")
    proc = subprocess.Popen(
        [HOST_BINARY, "up", "--manifest", os.path.join(ROOT, "spin.toml"),
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


def products_database(workdir):
    """The host's products SQLite file: runtime-config.toml's path, relative to the host's workdir."""
    path = os.path.join(".shop", "products.db")
    config = os.path.join(ROOT, "runtime-config.toml")
    if os.path.exists(config):
        import tomllib
        with open(config, "rb") as f:
            path = tomllib.load(f).get("sqlite_database", {}).get("products", {}).get("path", path)
    return os.path.join(workdir, path)


def start_baseline(database, workdir):
    """tools/native-baseline on `database`: (process, base URL)."""
    if not os.path.exists(BASELINE_BINARY):
        raise SystemExit(f"{BASELINE_BINARY} is missing: cargo build --release -p native-baseline (or run without --no-build)")
    if not os.path.exists(database):
        raise SystemExit(f"the host's products database is not at {database}; see runtime-config.toml")
    log = open(os.path.join(workdir, "baseline.log"), "w")
    proc = subprocess.Popen([BASELINE_BINARY, "--database", database, "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    m = re.match(r"\s*Serving (http://\S+)", line)
    if not m:
        proc.kill()
        proc.wait()
        raise SystemExit(f"native baseline did not start; see {workdir}/baseline.log")
    return proc, m.group(1).rstrip("/")


def fetch(url):
    """(status, body bytes) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def check_same_answers(host, native, ids):
    """Exits unless the baseline answers a few detail and list reads with the host's JSON (the
    links in `next`/`previous` compared with the host's address in place of the baseline's)."""
    lo, hi = min(ids), max(ids)
    paths = [f"/api/products/{i}/" for i in sorted({lo, ids[len(ids) // 2], hi})]
    paths += [f"/api/products/{hi + 1}/", "/api/products/?page_size=20", "/api/products/?page_size=20&page=2"]
    identical = 0
    for path in paths:
        host_status, host_body = fetch(host + path)
        native_status, native_body = fetch(native + path)
        native_body = native_body.replace(native.encode(), host.encode())
        if host_status != native_status or json.loads(host_body) != json.loads(native_body):
            raise SystemExit(f"the native baseline does not answer GET {path} as the host does:\n"
                             f"  host   {host_status} {host_body[:300]!r}\n  native {native_status} {native_body[:300]!r}")
        identical += host_body == native_body
    print(f"native baseline: same JSON as the host for {len(paths)} reads ({identical} byte for byte)", file=sys.stderr)


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


def percentile(values, pct):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def ms(seconds):
    return f"{seconds * 1000:.2f}ms"


def bench_login(base, args):
    user = f"bench{os.getpid()}"
    password = "bench-password-123"
    request("POST", f"{base}/api/accounts/register/", None, {"username": user, "email": f"{user}@example.com", "password": password})
    body = {"username": user, "password": password}
    times = []
    for _ in range(30):
        start = time.perf_counter()
        request("POST", f"{base}/api/accounts/login/", None, body)
        times.append(time.perf_counter() - start)
    script = os.path.join(tempfile.mkdtemp(prefix="shop-bench-login-"), "login.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = '{json.dumps(body)}'\n")
    rps, p50, p99, non2xx, sock = wrk(f"{base}/api/accounts/login/", 4, args.duration, script)
    return [("POST /api/accounts/login/ sequential", None, ms(percentile(times, 50)), ms(percentile(times, 99)), 0, ""),
            ("POST /api/accounts/login/ (wrk -c4)", rps, p50, p99, non2xx, sock)]


def bench_orders(base, args):
    import http.client
    import threading
    token = staff_token()
    product = request("POST", f"{base}/api/products/", token, {"name": "Bench order item", "price": "12.34", "stock": 2_000_000_000})
    pid = product["id"]
    host, port = base.removeprefix("http://").split(":")
    latencies, failures = [], []
    lock = threading.Lock()
    deadline = time.perf_counter() + args.duration

    def buyer(n):
        conn = http.client.HTTPConnection(host, int(port))
        user_token = user_token_for(10_000_000 + os.getpid() * 100 + n)
        headers = {"Authorization": f"Bearer {user_token}", "Content-Type": "application/json"}
        mine = []
        while time.perf_counter() < deadline:
            conn.request("POST", "/api/carts/add_item/", json.dumps({"product_id": pid, "quantity": 1}), headers)
            res = conn.getresponse(); res.read()
            start = time.perf_counter()
            conn.request("POST", "/api/orders/", json.dumps({"shipping_address": "1 Bench Road"}), headers)
            res = conn.getresponse(); res.read()
            elapsed = time.perf_counter() - start
            (mine if res.status == 201 else failures).append(elapsed if res.status == 201 else res.status)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=buyer, args=(n,)) for n in range(16)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return [("POST /api/orders/ (16 buyers)", len(latencies) / wall, ms(percentile(latencies, 50)), ms(percentile(latencies, 99)), len(failures), "")]


def user_token_for(user_id):
    now = int(time.time())
    return sign_token({"sub": str(user_id), "iat": now, "exp": now + 3600, "jti": f"b{user_id}", "token_type": "access", "is_staff": False})


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


def product_loads(base, workdir, args, ids):
    """The products scenario's two wrk runs against `base`: rows (label, req/s, p50, p99, non-2xx, socket errors)."""
    lo, hi = min(ids), max(ids)
    script = os.path.join(workdir, "detail.lua")
    with open(script, "w") as f:
        f.write(f'request = function()\n  return wrk.format("GET", "/api/products/" .. math.random({lo}, {hi}) .. "/")\nend\n')
    rows = []
    for label, url, s in [("GET /api/products/{id}/", f"{base}/api/products/", script),
                          ("GET /api/products/?page_size=20", f"{base}/api/products/?page_size=20", None)]:
        rps, p50, p99, non2xx, sock = wrk(url, args.connections, args.duration, s)
        rows.append((label, rps, p50, p99, non2xx, sock))
    return rows


def bench_baseline(base, workdir, args, ids):
    """The native baseline on the host's products database: checked against the host, then the
    same loads; rows as bench_engine's (engine "native")."""
    proc, native = start_baseline(products_database(workdir), workdir)
    try:
        check_same_answers(base, native, ids)
        rows = product_loads(native, workdir, args, ids)
        rss, hwm = rss_kib(proc.pid)
        return [("native", *row, rss, hwm) for row in rows]
    finally:
        proc.terminate()
        proc.wait()


def bench_engine(engine, args):
    """The scenarios on one engine: (host rows, native baseline rows)."""
    workdir = tempfile.mkdtemp(prefix=f"shop-bench-{engine}-")
    extra, cleanup = [], (lambda: None)
    if engine == "postgres":
        url, cleanup = fresh_postgres()
        extra = ["--database-url", url]
    proc, base = start_host(extra, workdir)
    try:
        rows, baseline = [], []
        if args.scenario in ("products", "all"):
            ids = seed(base, args.products)
            rows += product_loads(base, workdir, args, ids)
            if args.baseline and engine == "sqlite":
                baseline = bench_baseline(base, workdir, args, ids)
        if args.scenario in ("login", "all"):
            rows += bench_login(base, args)
        if args.scenario in ("orders", "all"):
            rows += bench_orders(base, args)
        rss, hwm = rss_kib(proc.pid)
        return [(engine, *row, rss, hwm) for row in rows], baseline
    finally:
        proc.terminate()
        proc.wait()
        cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def latency_ms(text):
    """wrk's latency text (`850.00us`, `3.21ms`, `1.02s`, `2.00m`) in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]


def print_ratios(host_rows, native_rows):
    """Host and native side by side, per request, with host/native for req/s and p99."""
    native = {label: (rps, p99) for _, label, rps, _, p99, *_ in native_rows}
    print("\nshop host vs native baseline on the same SQLite file, same wrk loads (ratio = host / native)")
    print(f"{'request':38} {'host req/s':>10} {'native':>9} {'ratio':>6}   {'host p99':>9} {'native':>9} {'ratio':>6}")
    for engine, label, rps, _, p99, *_ in host_rows:
        if engine != "sqlite" or label not in native:
            continue
        native_rps, native_p99 = native[label]
        host_ms, native_ms = latency_ms(p99), latency_ms(native_p99)
        p99_ratio = f"{host_ms / native_ms:6.2f}" if host_ms and native_ms else f"{'-':>6}"
        print(f"{label:38} {rps:10.0f} {native_rps:9.0f} {rps / native_rps:6.2f}   {p99:>9} {native_p99:>9} {p99_ratio}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--scenario", choices=["products", "login", "orders", "all"], default="all")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--host-binary", help="the shop binary to run (default: target/release/shop); implies --no-build")
    ap.add_argument("--baseline", action="store_true",
                    help="products on SQLite: also run tools/native-baseline on the host's database and print host/native ratios")
    args = ap.parse_args()
    if args.host_binary:
        global HOST_BINARY
        HOST_BINARY = os.path.abspath(args.host_binary)
        args.no_build = True
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    if args.baseline and (args.engine == "postgres" or args.scenario not in ("products", "all")):
        sys.exit("--baseline compares the products scenario on SQLite: use --engine sqlite (or both) and --scenario products (or all)")
    if not args.no_build:
        build(baseline=args.baseline)
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    rows, native_rows = [], []
    for engine in engines:
        host_rows, baseline_rows = bench_engine(engine, args)
        rows += host_rows
        native_rows += baseline_rows
    print(f"\n{args.duration}s per run, load generator and host on this machine ({os.cpu_count()} cores); RSS of the host after the engine's runs"
          + ("; native: tools/native-baseline on the host's SQLite file, its RSS after its runs" if native_rows else ""))
    print(f"{'engine':9} {'request':38} {'req/s':>9} {'p50':>9} {'p99':>9} {'failed':>7} {'RSS MiB':>8} {'peak MiB':>8}")
    for engine, label, rps, p50, p99, failed, sock, rss, hwm in rows + native_rows:
        rate = f"{rps:9.0f}" if rps is not None else f"{'-':>9}"
        print(f"{engine:9} {label:38} {rate} {p50:>9} {p99:>9} {failed:7d} {rss / 1024:8.1f} {hwm / 1024:8.1f}" + (f"  socket errors: {sock}" if sock else ""))
    if native_rows:
        print_ratios(rows, native_rows)


if __name__ == "__main__":
    main()
