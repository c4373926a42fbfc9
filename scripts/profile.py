#!/usr/bin/env python3
"""Profile the release host on one catalogue read with `perf`, guests' functions named.

    python3 scripts/profile.py                      # GET /api/products/{id}/, 8 s
    python3 scripts/profile.py --read list --host-binary /tmp/shop-old
    python3 scripts/profile.py --read orders --engine postgres

Starts target/release/shop as scripts/bench.py does (1,000 products on SQLite) with
SHOP_WASM_PROFILER=perfmap (wasmtime writes /tmp/perf-<pid>.map, so `perf` names the functions
of the compiled components), drives the read with wrk at 32 connections while `perf record -g`
samples the host, then prints where the samples fell: by thread, by binary (host, kernel, libc,
each component) and the hottest functions. The data stays in --output for `perf report -i`.
Needs `perf` (Debian package linux-perf) and `wrk`; build first (`python3 scripts/bench.py`
builds, or cargo build --release -p shop and the components).
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def report(data, sort, limit):
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "-g", "none"],
                         capture_output=True, text=True).stdout
    rows = [line for line in out.splitlines() if line.strip() and not line.startswith("#")]
    print(f"\nby {sort}:")
    for line in rows[:limit]:
        print("  " + line.strip()[:150])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--read", choices=["detail", "list", "orders"], default="detail",
                    help="a catalogue read, or `orders`: the checkout loop of bench.py --scenario orders")
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--host-binary", default=bench.HOST_BINARY)
    ap.add_argument("--output", default="perf-shop.data")
    ap.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite",
                    help="postgres: a fresh database on the local server, as bench.py makes")
    args = ap.parse_args()
    bench.HOST_BINARY = os.path.abspath(args.host_binary)
    os.environ["SHOP_WASM_PROFILER"] = "perfmap"
    workdir = tempfile.mkdtemp(prefix="shop-profile-")
    app_args, cleanup = [], (lambda: None)
    if args.engine == "postgres":
        url, cleanup = bench.fresh_postgres()
        app_args = ["--database-url", url]
    proc, base, staff = bench.start_host(bench.HOST_BINARY, app_args, workdir)
    try:
        if args.read == "orders":
            # The buyers' registration (Argon2id) is sampled too: a few percent of the run.
            perf = subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-o", args.output, "-p", str(proc.pid)],
                                    stderr=subprocess.DEVNULL)
            print(bench.bench_orders(base, staff, args, proc))
            perf.send_signal(2)
            perf.wait()
        else:
            ids = bench.seed(base, staff, 1000)
            script = os.path.join(workdir, "detail.lua")
            with open(script, "w") as f:
                f.write(f'request = function()\n  return wrk.format("GET", "/api/products/" .. math.random({min(ids)}, {max(ids)}) .. "/")\nend\n')
            load = ["-s", script, f"{base}/api/products/"] if args.read == "detail" else [f"{base}/api/products/?page_size=20"]
            subprocess.run(["wrk", "-t2", "-c32", "-d2s", *load], capture_output=True)  # warm up
            perf = subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-o", args.output, "-p", str(proc.pid)],
                                    stderr=subprocess.DEVNULL)
            out = subprocess.run(["wrk", "-t2", "-c32", f"-d{args.duration}s", "--latency", *load],
                                 capture_output=True, text=True).stdout
            perf.send_signal(2)
            perf.wait()
            print(out)
    finally:
        proc.terminate()
        proc.wait()
        cleanup()
    report_all(args)


def report_all(args):
    report(args.output, "comm", 6)
    report(args.output, "dso", 8)
    report(args.output, "sym", 30)


if __name__ == "__main__":
    main()
