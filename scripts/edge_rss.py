#!/usr/bin/env python3
"""The host's memory at the edge: RSS at rest, its peak under the 32-connection catalogue load,
and its peak during 40 concurrent logins (Argon2id, 19 MiB each, bounded by
--max-concurrent-hashing), on a fresh SQLite app served by the release host.

    python3 scripts/edge_rss.py [--no-build] [--connections 32] [--duration 10] [--logins 40]
                                [--login-method post]

`--login-method post` sends the logins with a lower-case method (http.client sends it as
given), as an attacker would to get past a case-sensitive bound.

The peaks are VmHWM from /proc, reset before each phase through /proc/<pid>/clear_refs.
Extra arguments after `--` go to `shop up` (e.g. `-- --max-concurrent-hashing 4`).
"""

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOP = os.path.join(ROOT, "target", "release", "shop")
PASSWORD = "correct horse battery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def request(port, method, path, body=None, token=None, conn=None):
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    res = conn.getresponse()
    data = res.read()
    if own:
        conn.close()
    return res.status, (json.loads(data) if data else None)


def catalogue(port, ids, connections, duration):
    stop = time.time() + duration
    counts = [0] * connections
    failures = [0] * connections

    def run(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.time() < stop:
            path = random.choice([f"/api/products/{random.choice(ids)}/", "/api/products/?page_size=20"])
            try:
                status, _ = request(port, "GET", path, conn=conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            counts[i] += 1
            if status != 200:
                failures[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), sum(failures)


def logins(port, username, n, method="POST"):
    statuses = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        statuses[i], _ = request(port, method, "/api/accounts/login/",
                                 {"username": username, "password": PASSWORD})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, time.time() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--logins", type=int, default=40)
    ap.add_argument("--login-method", default="POST")
    ap.add_argument("up_args", nargs="*")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "shop"], cwd=ROOT, check=True)
        subprocess.run([SHOP, "build"], cwd=ROOT, check=True)

    work = tempfile.mkdtemp(prefix="shop-edge-rss-")
    manifest = os.path.join(ROOT, "spin.toml")
    env = dict(os.environ, SHOP_SUPERUSER_PASSWORD=PASSWORD, RUST_LOG="warn")
    subprocess.run([SHOP, "createsuperuser", "--manifest", manifest, "--username", "admin",
                    "--email", "admin@example.com"], cwd=work, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    port = free_port()
    host = subprocess.Popen([SHOP, "up", "--manifest", manifest, "--listen", f"127.0.0.1:{port}",
                             "--no-watch", *args.up_args], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or host.poll() is not None:
                sys.exit("the host did not start")
            time.sleep(0.1)
        status, tokens = request(port, "POST", "/api/accounts/login/",
                                 {"username": "admin", "password": PASSWORD})
        assert status == 200, tokens
        staff = tokens["access"]
        ids = []
        for i in range(200):
            status, product = request(port, "POST", "/api/products/",
                                      {"name": f"Product {i}", "price": "9.99", "stock": 100},
                                      token=staff)
            assert status == 201, product
            ids.append(product["id"])
        username = f"buyer{random.randrange(10**9)}"
        status, body = request(port, "POST", "/api/accounts/register/",
                               {"username": username, "email": f"{username}@example.com",
                                "password": PASSWORD})
        assert status == 201, body
        time.sleep(2)
        rest = kib(host.pid, "VmRSS")

        reset_peak(host.pid)
        done, failed = catalogue(port, ids, args.connections, args.duration)
        catalogue_peak = kib(host.pid, "VmHWM")

        time.sleep(1)
        reset_peak(host.pid)
        statuses, took = logins(port, username, args.logins, args.login_method)
        login_peak = kib(host.pid, "VmHWM")
        after = kib(host.pid, "VmRSS")

        print(f"host RSS at rest:                 {rest / 1024:6.1f} MiB")
        print(f"peak, catalogue ({args.connections} connections, {args.duration} s): "
              f"{catalogue_peak / 1024:6.1f} MiB  ({done / args.duration:.0f} req/s, "
              f"{failed} not 200)")
        print(f"peak, {args.logins} concurrent {args.login_method} logins: {login_peak / 1024:6.1f} MiB  "
              f"({took:.2f} s; statuses {sorted(set(statuses))})")
        print(f"RSS after the logins:             {after / 1024:6.1f} MiB")
    finally:
        host.terminate()
        host.wait(timeout=20)


if __name__ == "__main__":
    main()
