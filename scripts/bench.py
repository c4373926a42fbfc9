#!/usr/bin/env python3
"""Benchmark the shop on the release host: seed products, drive it with wrk, print what it did.

    python3 scripts/bench.py                 # every scenario, SQLite and Postgres
    python3 scripts/bench.py --engine sqlite --duration 5 --scenario products
    python3 scripts/bench.py --no-build --engine postgres --scenario orders --duration 5
    python3 scripts/bench.py --no-build --engine both --scenario products --baseline --duration 5
    python3 scripts/bench.py --no-build --scenario orders --compare-binary /tmp/shop-before --rounds 2

Scenarios:
- `products`: GET detail and list over 1,000 products, wrk -t2 at 32 connections.
- `login`: Argon2id logins: sequential latency, then wrk at 4 connections.
- `orders`: the checkout. 16 buyers (real users, registered and logged in through the API), each a
  wrk thread with one connection (wrk -t16 -c16, scripts/bench_orders.lua), looping "add product A
  to the cart, add product B, place the order" (two POST /api/carts/add_item/, one POST
  /api/orders/), so a buyer's requests never overlap. Reports orders/s (201s to POST /api/orders/
  counted by the script), requests/s and p50/p99 of a request (wrk --latency: all three kinds), and
  failed requests (non-2xx and socket errors). Afterwards the shop's own count of orders (GET
  /api/orders/ as staff) and product A's stock must agree with what wrk counted, or the run fails.

Each run starts a fresh host (its own SQLite files, or a fresh Postgres database) with a staff
user made by `shop createsuperuser`; every token is a real user's, from POST /api/accounts/login/.
Prints requests/s, p50/p99 latency (from wrk --latency), failures and the host's RSS.

`--compare-binary PATH` (e.g. an earlier build of target/release/shop): every scenario also runs
on that host, in the same run, alternating which goes first over `--rounds`, and the table
`host / compare` gives the ratio of the two (means over the rounds). `--compare-manifest
SPIN_TOML` runs the compared side on another build of the components too (a spin.toml whose
`source` paths name them, e.g. a copy of the repository at an earlier commit, built); alone, it
compares two builds of the components on the same host binary.

`--baseline` (products scenario): after the host's runs, starts tools/native-baseline (a plain
native server answering the same two reads from the same SQL: rusqlite on the host's SQLite file,
sqlx on its products schema on Postgres), checks that it answers as the host does, runs the same
two wrk loads against it and prints host/native ratios: absolute figures depend on the machine,
the ratio much less.
Needs `wrk` (Debian package), `openssl` (for the Ed25519 key pair the host signs tokens with) and,
for Postgres, `psql` and a server (SHOP_BENCH_POSTGRES).
"""
import argparse
import atexit
import collections
import functools
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The host under test (`--host-binary`), and the one compared with it (`--compare-binary`).
HOST_BINARY = os.path.join(ROOT, "target/release/shop")
# The native baseline of `--baseline` (tools/native-baseline: bench tooling, not the product).
BASELINE_BINARY = os.path.join(ROOT, "target/release/native-baseline")
# The checkout's load: one wrk thread and connection per buyer.
ORDERS_SCRIPT = os.path.join(ROOT, "scripts/bench_orders.lua")
BUYERS = 16
# Enough of products A and B for every order any run can place.
ORDER_STOCK = 2_000_000_000
# The staff user each host gets from `shop createsuperuser`, and every bench user's password.
STAFF = "benchstaff"
PASSWORD = "bench-password-123"
MANIFEST = os.path.join(ROOT, "spin.toml")


@functools.lru_cache(maxsize=None)
def jwt_keys():
    """The Ed25519 key pair the hosts sign and check tokens with, made once per run: (private PEM, public PEM)."""
    folder = tempfile.mkdtemp(prefix="shop-bench-key-")
    atexit.register(shutil.rmtree, folder, True)
    key = os.path.join(folder, "jwt.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True)
    public = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True, capture_output=True, text=True).stdout
    with open(key) as f:
        return f.read(), public


# The admin API's token: the orders scenario reads the host's /metrics through it.
ADMIN_TOKEN = "bench-admin-token-0123456789"


def host_env():
    private_key, public_key = jwt_keys()
    return dict(os.environ, SPIN_VARIABLE_JWT_PRIVATE_KEY=private_key, SPIN_VARIABLE_JWT_PUBLIC_KEY=public_key,
                RUST_LOG=os.environ.get("RUST_LOG", "info"), SHOP_ADMIN_TOKEN=ADMIN_TOKEN)


@functools.lru_cache(maxsize=None)
def up_flags(binary):
    """The flags `binary up` knows (an earlier build may lack the newer ones)."""
    out = subprocess.run([binary, "up", "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"--[a-z][a-z-]+", out))


def build(baseline=False):
    # With --tests: the features the workspace's tests build with, so this reuses their build
    # (plain `-p shop` unifies differently and rebuilds wasmtime); it makes target/release/shop.
    subprocess.run(["cargo", "build", "--release", "--tests", "-p", "shop"], cwd=ROOT, check=True)
    if baseline:
        subprocess.run(["cargo", "build", "--release", "-p", "native-baseline"], cwd=ROOT, check=True)
    components = ["-p", "products", "-p", "accounts", "-p", "cart", "-p", "orders", "-p", "docs", "-p", "console"]
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2", *components], cwd=ROOT, check=True)


def start_host(binary, app_args, workdir, manifest=MANIFEST):
    """`binary up` in `workdir` with a staff user made first: (process, base URL, staff token)."""
    env = host_env()
    subprocess.run([binary, "createsuperuser", "--manifest", manifest, *app_args, "--username", STAFF,
                    "--email", "staff@bench.example.com"], cwd=workdir, env=dict(env, SHOP_SUPERUSER_PASSWORD=PASSWORD),
                   check=True, stdout=subprocess.DEVNULL)
    extra = []
    if "--registrations-per-client" in up_flags(binary):
        # The bench registers all its buyers from one address.
        extra = ["--registrations-per-client", "1000"]
    log = open(os.path.join(workdir, "host.log"), "w")
    proc = subprocess.Popen(
        [binary, "up", "--manifest", manifest, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
         *app_args, *extra],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    proc.admin = None
    for line in proc.stdout:
        admin = re.match(r"\s*Admin API on (http://[^/\s]+)", line)
        if admin:
            proc.admin = admin.group(1)
        m = re.match(r"\s*Serving (http://\S+)", line)
        if m:
            base = m.group(1).rstrip("/")
            # Drain the rest of stdout (per-request logs) so the host never blocks on a full pipe.
            subprocess.Popen(["cat"], stdin=proc.stdout, stdout=log)
            staff = request("POST", f"{base}/api/accounts/login/", None, {"username": STAFF, "password": PASSWORD})["access"]
            return proc, base, staff
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


def products_url(binary, app_args, manifest=MANIFEST):
    """The products service's own Postgres URL (its role, `search_path` its schema), as
    `shop migrate --print-urls` gives it."""
    out = subprocess.run([binary, "migrate", "--manifest", manifest, *app_args, "--print-urls"], env=host_env(),
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^SPIN_VARIABLE_PRODUCTS_DATABASE=(\S+)$", out, re.M)
    if not m:
        raise SystemExit(f"shop migrate --print-urls named no products database:\n{out}")
    return m.group(1)


def start_baseline(database, workdir):
    """tools/native-baseline on `database` (arguments: `--database FILE` or `--database-url URL`): (process, base URL)."""
    if not os.path.exists(BASELINE_BINARY):
        raise SystemExit(f"{BASELINE_BINARY} is missing: cargo build --release -p native-baseline (or run without --no-build)")
    if database[0] == "--database" and not os.path.exists(database[1]):
        raise SystemExit(f"the host's products database is not at {database[1]}; see runtime-config.toml")
    log = open(os.path.join(workdir, "baseline.log"), "w")
    proc = subprocess.Popen([BASELINE_BINARY, *database, "--listen", "127.0.0.1:0"],
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


def seed(base, staff, n):
    ids = []
    for i in range(n):
        p = request("POST", f"{base}/api/products/", staff,
                    {"name": f"Bench product {i}", "description": "seeded for the benchmark", "price": f"{i % 500}.99", "stock": i % 50})
        ids.append(p["id"])
    return ids


def proc_stat(pid):
    """Process `pid`'s name and the fields of /proc/<pid>/stat after it, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    name, rest = stat.split("(", 1)[1].rsplit(")", 1)
    return name, rest.split()


def ticks_to_seconds(fields):
    return sum(int(v) for v in fields) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """The user and system CPU seconds process `pid` has used so far (0 if it is gone)."""
    stat = proc_stat(pid)
    return ticks_to_seconds(stat[1][11:13]) if stat else 0.0


def postgres_cpu_seconds():
    """The CPU seconds of this machine's Postgres server so far: its live processes (the
    postmaster, its workers, every backend) and the backends that have ended, which the
    postmaster reaps (its children's time)."""
    stats = (proc_stat(entry) for entry in os.listdir("/proc") if entry.isdigit())
    # utime, stime, cutime, cstime: its own time and that of its ended children.
    return sum(ticks_to_seconds(fields[11:15]) for name, fields in filter(None, stats) if name == "postgres")


def load_cpu_seconds():
    """The CPU seconds of this script's ended children (wrk runs), so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def host_counts(proc):
    """What the machine has done so far for the host: its CPU seconds, Postgres's and the load
    generator's, and from its /metrics the instances made, statements run and link calls, as
    {(metric, labels): value}."""
    counts = {("cpu seconds", ""): cpu_seconds(proc.pid),
              ("postgres cpu seconds", ""): postgres_cpu_seconds(),
              ("load cpu seconds", ""): load_cpu_seconds()}
    if proc.admin:
        req = urllib.request.Request(f"{proc.admin}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as res:
            text = res.read().decode()
        for name, labels, value in re.findall(
                r"^(shop_instances_total|shop_database_statements_total|shop_link_calls_total)\{([^}]*)\} (\S+)$", text, re.M):
            counts[(name, labels)] = float(value)
    return counts


def print_order_costs(before, after, orders):
    """What one order cost the host: CPU, instances, statements by database and kind, link calls
    (per order of the loop: two cart additions and the placement, with their link calls)."""
    if not orders:
        return
    delta = {key: after[key] - before.get(key, 0) for key in after}
    per = lambda key: delta.get(key, 0) / orders  # noqa: E731
    label = lambda labels, name: dict(re.findall(r'(\w+)="([^"]*)"', labels)).get(name, "")  # noqa: E731
    host, server, load = (per((name, "")) for name in ("cpu seconds", "postgres cpu seconds", "load cpu seconds"))
    lines = [f"host CPU {host * 1e6:.0f} us"]
    if server >= 0.00005:
        lines.append(f"Postgres server CPU {server * 1e6:.0f} us")
    lines.append(f"wrk CPU {load * 1e6:.0f} us")
    # What the machine's cores could place at most if the host, the server and wrk alone used them.
    lines.append(f"ceiling of {os.cpu_count()} cores at these costs {os.cpu_count() / (host + server + load):.0f} orders/s")
    groups = {"instances": "shop_instances_total", "statements": "shop_database_statements_total",
              "link calls": "shop_link_calls_total"}
    for title, metric in groups.items():
        keys = sorted(k for k in delta if k[0] == metric and delta[k])
        total = sum(per(k) for k in keys)
        if metric == "shop_instances_total":
            parts = [f"{label(k[1], 'component')} {per(k):.1f}" for k in keys]
        elif metric == "shop_database_statements_total":
            parts = [f"{label(k[1], 'database')} {label(k[1], 'kind')} {per(k):.1f}" for k in keys]
        else:
            parts = [f"{label(k[1], 'from')}->{label(k[1], 'to')} {per(k):.1f}" for k in keys]
        lines.append(f"{title} {total:.1f}" + (f" ({', '.join(parts)})" if parts else ""))
    print("per order: " + "; ".join(lines), file=sys.stderr)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def percentile(values, pct):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def ms(seconds):
    return f"{seconds * 1000:.2f}ms"


def row(label, run, orders=None):
    """A table row of one load: label, req/s, orders/s, p50, p99, failed requests, socket errors."""
    return (label, run["rps"], orders, run["p50"], run["p99"], run["failed"], run["socket"])


def bench_login(base, args):
    user = f"bench{os.getpid()}"
    request("POST", f"{base}/api/accounts/register/", None, {"username": user, "email": f"{user}@example.com", "password": PASSWORD})
    body = {"username": user, "password": PASSWORD}
    times = []
    for _ in range(30):
        start = time.perf_counter()
        request("POST", f"{base}/api/accounts/login/", None, body)
        times.append(time.perf_counter() - start)
    script = os.path.join(tempfile.mkdtemp(prefix="shop-bench-login-"), "login.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = '{json.dumps(body)}'\n")
    run = wrk(f"{base}/api/accounts/login/", 2, 4, args.duration, script)
    return [("POST /api/accounts/login/ sequential", None, None, ms(percentile(times, 50)), ms(percentile(times, 99)), 0, ""),
            row("POST /api/accounts/login/ (wrk -c4)", run)]


def buyer_token(base, n):
    """A real user's access token: registered, then logged in, through the API."""
    user = f"buyer{n}_{os.getpid()}_{time.monotonic_ns()}"
    request("POST", f"{base}/api/accounts/register/", None, {"username": user, "email": f"{user}@bench.example.com", "password": PASSWORD})
    return request("POST", f"{base}/api/accounts/login/", None, {"username": user, "password": PASSWORD})["access"]


def bench_orders(base, staff, args, proc=None):
    """The checkout: 16 buyers placing orders through scripts/bench_orders.lua, counted by wrk and
    checked against the shop's own count of orders and product A's stock."""
    a, b = (request("POST", f"{base}/api/products/", staff,
                    {"name": f"Bench order item {name}", "price": "12.34", "stock": ORDER_STOCK})["id"] for name in "AB")
    tokens = [buyer_token(base, n) for n in range(BUYERS)]
    env = dict(os.environ, BENCH_TOKENS=",".join(tokens), BENCH_PRODUCTS=f"{a},{b}")
    before = host_counts(proc) if proc else {}
    run = wrk(f"{base}/", BUYERS, BUYERS, args.duration, ORDERS_SCRIPT, env=env)
    after = host_counts(proc) if proc else {}
    counted = re.search(r"^buyers (\d+) orders (\d+) failed (\d+) seconds ([\d.]+)$", run["stdout"], re.M)
    if not counted or int(counted.group(1)) != BUYERS:
        raise SystemExit(f"scripts/bench_orders.lua did not report {BUYERS} buyers:\n{run['stdout']}")
    orders, non2xx, seconds = int(counted.group(2)), int(counted.group(3)), float(counted.group(4))
    failed = non2xx + run["socket_errors"]
    held = shop_orders(base, staff)
    taken = ORDER_STOCK - request("GET", f"{base}/api/products/{a}/")["stock"]
    taken_b = ORDER_STOCK - request("GET", f"{base}/api/products/{b}/")["stock"]
    # A buyer's last order may be in flight when wrk stops (placed, not counted), and one wrk gave
    # up on (a timeout) may still be placed: at most one per buyer, plus the timeouts. Without a
    # failure every order holds one A and one B, each taken from the stock exactly once.
    if not orders <= held <= orders + BUYERS + run["timeouts"] or (failed == 0 and not taken == taken_b == held):
        raise SystemExit(f"the shop's count does not match wrk's: wrk counted {orders} orders ({failed} failed requests), "
                         f"the shop holds {held} orders, {taken} of product A and {taken_b} of B were taken")
    late = ""
    if held > orders:
        newest = request("GET", f"{base}/api/orders/?page_size={min(100, held - orders)}", staff)["results"]
        late = " (" + ", ".join(f"{n} {status}" for status, n in sorted(collections.Counter(o["status"] for o in newest).items())) + ")"
    print(f"orders: wrk counted {orders}, the shop holds {held}: {held - orders} placed as wrk stopped{late}; "
          f"{taken} of product A and {taken_b} of B taken", file=sys.stderr)
    if proc:
        print_order_costs(before, after, held)
    if non2xx != run["non2xx"]:
        print(f"note: the script counted {non2xx} non-2xx answers, wrk {run['non2xx']} non-2xx/3xx", file=sys.stderr)
    return [row(f"checkout request ({BUYERS} buyers)", run, orders / seconds)]


def shop_orders(base, staff):
    """How many orders the shop holds, once the requests still in flight have finished."""
    count, last = None, -1
    for _ in range(50):
        count = request("GET", f"{base}/api/orders/?page_size=1", staff)["count"]
        if count == last:
            return count
        last = count
        time.sleep(0.2)
    return count


def wrk(url, threads, connections, duration, script=None, env=None):
    """One wrk run: req/s, p50, p99, failed requests (non-2xx/3xx answers and socket errors), its stdout."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    ran = subprocess.run(cmd + [url], capture_output=True, text=True, check=True, env=env)
    out = ran.stdout
    if ran.stderr.strip():
        print(ran.stderr.strip(), file=sys.stderr)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: (.*)", out)
    socket_counts = dict((k, int(v)) for k, v in re.findall(r"(\w+) (\d+)", socket.group(1))) if socket else {}
    non2xx = int(errors.group(1)) if errors else 0
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "non2xx": non2xx,
            "socket_errors": sum(socket_counts.values()), "timeouts": socket_counts.get("timeout", 0),
            "failed": non2xx + sum(socket_counts.values()), "socket": socket.group(1) if socket else "", "stdout": out}


def fresh_postgres():
    server = os.environ.get("SHOP_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    name = f"shop_bench_{os.getpid()}"
    subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
    subprocess.run(["psql", f"{server}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    return f"{server}/{name}", lambda: subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"])


def product_loads(base, workdir, args, ids):
    """The products scenario's two wrk runs against `base`: rows as `row` makes them."""
    lo, hi = min(ids), max(ids)
    script = os.path.join(workdir, "detail.lua")
    with open(script, "w") as f:
        f.write(f'request = function()\n  return wrk.format("GET", "/api/products/" .. math.random({lo}, {hi}) .. "/")\nend\n')
    rows = []
    for label, url, s in [("GET /api/products/{id}/", f"{base}/api/products/", script),
                          ("GET /api/products/?page_size=20", f"{base}/api/products/?page_size=20", None)]:
        rows.append(row(label, wrk(url, 2, args.connections, args.duration, s)))
    return rows


def bench_baseline(base, workdir, args, ids, database):
    """The native baseline on the host's products database: checked against the host, then the
    same loads; rows as `row` makes them, with the baseline's RSS."""
    proc, native = start_baseline(database, workdir)
    try:
        check_same_answers(base, native, ids)
        rows = product_loads(native, workdir, args, ids)
        rss, hwm = rss_kib(proc.pid)
        return [(*r, rss, hwm) for r in rows]
    finally:
        proc.terminate()
        proc.wait()


def bench_engine(engine, args, system, binary, manifest=MANIFEST):
    """The scenarios on one engine, on a fresh host `binary`: rows (engine, system, label, req/s,
    orders/s, p50, p99, failed, socket errors, RSS KiB, peak KiB), the native baseline's included."""
    workdir = tempfile.mkdtemp(prefix=f"shop-bench-{engine}-")
    app_args, cleanup = [], (lambda: None)
    if engine == "postgres":
        url, cleanup = fresh_postgres()
        app_args = ["--database-url", url]
    proc, base, staff = start_host(binary, app_args, workdir, manifest)
    failed = False
    try:
        rows, baseline = [], []
        if args.scenario in ("products", "all"):
            ids = seed(base, staff, args.products)
            rows += product_loads(base, workdir, args, ids)
            if args.baseline and system == "host":
                database = (["--database-url", products_url(binary, app_args, manifest)] if engine == "postgres"
                            else ["--database", products_database(workdir)])
                baseline = bench_baseline(base, workdir, args, ids, database)
        if args.scenario in ("login", "all"):
            rows += bench_login(base, args)
        if args.scenario in ("orders", "all"):
            rows += bench_orders(base, staff, args, proc)
        rss, hwm = rss_kib(proc.pid)
        failed = any(r[5] or r[6] for r in rows)
        return [(engine, system, *r, rss, hwm) for r in rows] + [(engine, "native", *r) for r in baseline]
    except BaseException:
        failed = True
        raise
    finally:
        proc.terminate()
        proc.wait()
        cleanup()
        if failed:
            # The host's log says why a request failed, and its SQLite files what it left
            # (a checkout's claim, say): keep the run's folder.
            kept = tempfile.mkdtemp(prefix=f"shop-bench-failed-{engine}-")
            shutil.copytree(workdir, kept, dirs_exist_ok=True)
            print(f"a request failed: the host's log and databases are kept in {kept} (host.log)")
        shutil.rmtree(workdir, ignore_errors=True)


def latency_ms(text):
    """wrk's latency text (`850.00us`, `3.21ms`, `1.02s`, `2.00m`) in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def print_ratios(rows, left, right, title):
    """`left` and `right` side by side per engine and request (means over rounds), with
    left/right for req/s (orders/s for the checkout) and p99."""
    keys = []
    for engine, system, label, *_ in rows:
        if system == left and (engine, label) not in keys:
            keys.append((engine, label))
    found = [(k, [r for r in rows if r[1] == left and (r[0], r[2]) == k], [r for r in rows if r[1] == right and (r[0], r[2]) == k])
             for k in keys]
    found = [f for f in found if f[1] and f[2]]
    if not found:
        return
    print(f"\n{title} (ratio = {left} / {right}; req/s, or orders/s for the checkout)")
    print(f"{'engine':9} {'request':38} {left + ' /s':>11} {right:>9} {'ratio':>6}   {left + ' p99':>9} {right:>9} {'ratio':>6}")
    for (engine, label), mine, theirs in found:
        pick = lambda r: r[4] if r[4] is not None else r[3]
        rate, other = mean(pick(r) for r in mine), mean(pick(r) for r in theirs)
        p99, other_p99 = mean(latency_ms(r[6]) for r in mine), mean(latency_ms(r[6]) for r in theirs)
        rate_ratio = f"{rate / other:6.2f}" if rate and other else f"{'-':>6}"
        p99_ratio = f"{p99 / other_p99:6.2f}" if p99 and other_p99 else f"{'-':>6}"
        shown = lambda v: f"{v:.0f}" if v is not None else "-"
        shown_ms = lambda v: f"{v:.2f}ms" if v is not None else "-"
        print(f"{engine:9} {label:38} {shown(rate):>11} {shown(other):>9} {rate_ratio}   {shown_ms(p99):>9} {shown_ms(other_p99):>9} {p99_ratio}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--scenario", choices=["products", "login", "orders", "all"], default="all")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--host-binary", help="the shop binary to run (default: target/release/shop); implies --no-build")
    ap.add_argument("--compare-binary", metavar="PATH",
                    help="a second shop binary (e.g. an earlier build) run beside the first in the same run, with the ratio of the two")
    ap.add_argument("--compare-manifest", metavar="SPIN_TOML",
                    help="the compared side runs this app (another build of the components); with or without --compare-binary")
    ap.add_argument("--rounds", type=int, default=1,
                    help="with --compare-binary: runs of each binary per engine, alternating which goes first (default 1)")
    ap.add_argument("--baseline", action="store_true",
                    help="products: also run tools/native-baseline on the host's products database and print host/native ratios")
    args = ap.parse_args()
    host = os.path.abspath(args.host_binary) if args.host_binary else HOST_BINARY
    if args.host_binary:
        args.no_build = True
    binaries = [("host", host, MANIFEST)]
    if args.compare_binary or args.compare_manifest:
        compare = os.path.abspath(args.compare_binary) if args.compare_binary else host
        if not os.access(compare, os.X_OK):
            sys.exit(f"--compare-binary {compare} is not an executable")
        manifest = os.path.abspath(args.compare_manifest) if args.compare_manifest else MANIFEST
        if not os.path.isfile(manifest):
            sys.exit(f"--compare-manifest {manifest} is not a file")
        binaries.append(("compare", compare, manifest))
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    if args.baseline and args.scenario not in ("products", "all"):
        sys.exit("--baseline compares the products scenario: use --scenario products (or all)")
    if not args.no_build:
        build(baseline=args.baseline)
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    rows = []
    for engine in engines:
        for turn in range(args.rounds if len(binaries) > 1 else 1):
            for system, binary, manifest in (binaries if turn % 2 == 0 else binaries[::-1]):
                rows += bench_engine(engine, args, system, binary, manifest)
    print(f"\n{args.duration}s per run, load generator and host on this machine ({os.cpu_count()} cores); RSS of the host after the engine's runs")
    for system, binary, manifest in binaries:
        print(f"{system}: {binary}" + (f" with {manifest}" if manifest != MANIFEST else ""))
    if any(r[1] == "native" for r in rows):
        print("native: tools/native-baseline on the host's products database (rusqlite on SQLite, sqlx on Postgres), its RSS after its runs")
    print(f"{'engine':9} {'system':8} {'request':38} {'req/s':>9} {'orders/s':>9} {'p50':>9} {'p99':>9} {'failed':>7} {'RSS MiB':>8} {'peak MiB':>8}")
    for engine, system, label, rps, orders, p50, p99, failed, sock, rss, hwm in rows:
        rate = f"{rps:9.0f}" if rps is not None else f"{'-':>9}"
        placed = f"{orders:9.0f}" if orders is not None else f"{'-':>9}"
        print(f"{engine:9} {system:8} {label:38} {rate} {placed} {p50:>9} {p99:>9} {failed:7d} {rss / 1024:8.1f} {hwm / 1024:8.1f}"
              + (f"  socket errors: {sock}" if sock else ""))
    print_ratios(rows, "host", "native", "shop host vs native baseline on the same database, same wrk loads")
    print_ratios(rows, "host", "compare", "host vs compare build, same loads, same run")


if __name__ == "__main__":
    main()
