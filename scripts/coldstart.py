#!/usr/bin/env python3
"""Cold start of the whole app: from `shop up` process start to the first answered request.

    python3 scripts/coldstart.py            # 5 runs without the compiled cache, 5 with it

Without the cache every component is compiled by Cranelift at start; with it (`shop compile`,
or any earlier start) the host loads the serialized code. Uses a fresh data folder per run.
"""
import glob
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOP = os.path.join(ROOT, "target/release/shop")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_answer(port, deadline):
    request = f"GET /api/products/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            time.sleep(0.002)
    return False


def one_run():
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="shop-coldstart-")
    env = dict(os.environ, RUST_LOG="warn")  # a local run generates its own key pair
    started = time.perf_counter()
    proc = subprocess.Popen([SHOP, "up", "--manifest", os.path.join(ROOT, "spin.toml"), "--listen", f"127.0.0.1:{port}"],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not first_answer(port, started + 60):
            sys.exit("the host did not answer within 60 s")
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    without = []
    for _ in range(runs):
        for cached in glob.glob(os.path.join(ROOT, ".shop", "compiled", "*.cwasm")):
            os.remove(cached)
        without.append(one_run())
    subprocess.run([SHOP, "compile", "--manifest", os.path.join(ROOT, "spin.toml")], check=True, stdout=subprocess.DEVNULL)
    with_cache = [one_run() for _ in range(runs)]
    print(f"cold start, process start to first answered GET /api/products/ ({runs} runs each, SQLite, fresh data folder)")
    for label, times in [("without the compiled cache", without), ("with `shop compile`'s cache", with_cache)]:
        print(f"  {label:30} median {statistics.median(times) * 1000:7.0f} ms   min {min(times) * 1000:7.0f} ms   max {max(times) * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
