"""How `kdedge serve` holds up against a slowloris: /healthz latency and RSS under N held
connections that trickle their headers.

Runs the server in a child process (so its RSS is its own) on 127.0.0.1, opens
``--connections`` sockets that each send part of a request line and then one byte every
``--trickle`` seconds, probes ``GET /healthz`` ``--probes`` times on fresh connections
meanwhile, and prints p50/p95 of the probes and the server's RSS before and after. Every
loop is bounded in count and time; the attack stops by itself after ``--seconds``.

    python benchmarks/serve_slowloris.py                       # the tiny test bundle
    python benchmarks/serve_slowloris.py --bundle B --connections 1000 --seconds 20

Only loopback addresses are used. The server runs with its defaults (64 connections,
10 s request timeout) unless ``--max-connections`` / ``--request-timeout`` say otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def serve(
    bundle: str, port_queue, max_connections: int, request_timeout: float, src: str | None
) -> None:
    if src:  # another checkout's kdedge (e.g. main, to compare against)
        sys.path.insert(0, src)
    from kdedge.runtimes import load
    from kdedge.runtimes.server import PredictServer

    rt = load(bundle)
    try:
        server = PredictServer(
            rt,
            "127.0.0.1",
            0,
            max_connections=max_connections,
            request_timeout=request_timeout,
        )
    except TypeError:  # a kdedge before issue #19: no limits to set
        server = PredictServer(rt, "127.0.0.1", 0)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def probe(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200 and json.loads(response.read())["status"] == "ok"
    return (time.perf_counter() - started) * 1000


def _evictions(url: str) -> str:
    """What the server says it closed (kdedge_connections_evicted), if it says."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            lines = response.read().decode().splitlines()
    except OSError as exc:
        return f"? (/metrics failed: {exc})"
    found = [line for line in lines if line.startswith("kdedge_connections_evicted{")]
    return ", ".join(line.split("{", 1)[1].replace("}", ":") for line in found) or "none"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="a kdedge bundle (default: build the tiny test one)")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0, help="attack duration cap")
    parser.add_argument("--trickle", type=float, default=1.0, help="seconds between bytes")
    parser.add_argument("--max-connections", type=int, default=64)
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument("--src", help="run the server from this checkout's kdedge instead")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    bundle = args.bundle
    if bundle is None:
        sys.path.insert(0, str(ROOT))
        from tests.runtimes.tiny_bundle import build_tiny_bundle

        bundle = str(build_tiny_bundle(Path(tempfile.mkdtemp()) / "bundle"))

    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    child = ctx.Process(
        target=serve,
        args=(bundle, ports, args.max_connections, args.request_timeout, args.src),
        daemon=True,
    )
    child.start()
    port = ports.get(timeout=60)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        baseline = [probe(url) for _ in range(50)]  # also warms the server up
        rss_before, threads_before = rss_mb(child.pid), threads(child.pid)
        attackers: list[socket.socket] = []
        refused = 0
        for _ in range(args.connections):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
                attackers.append(sock)
            except OSError:
                refused += 1
        started = time.monotonic()
        latencies, failures, last_trickle = [], 0, 0.0
        peak_threads, peak_rss = threads(child.pid), rss_mb(child.pid)
        for _ in range(args.probes):
            if time.monotonic() - started > args.seconds:
                break
            if time.monotonic() - last_trickle >= args.trickle:
                for sock in attackers:
                    with contextlib.suppress(OSError):
                        sock.send(b"X")
                last_trickle = time.monotonic()
            try:
                latencies.append(probe(url))
            except OSError:
                failures += 1
            peak_threads = max(peak_threads, threads(child.pid))
            peak_rss = max(peak_rss, rss_mb(child.pid))
            time.sleep(0.01)
        rss_after = rss_mb(child.pid)
        evicted = _evictions(f"http://127.0.0.1:{port}/metrics")
        for sock in attackers:
            sock.close()
    finally:
        child.terminate()
        child.join(10)
    print(
        f"server: max_connections {args.max_connections}, request_timeout "
        f"{args.request_timeout:g} s; bundle {bundle}"
    )
    print(
        f"attack: {len(attackers)} slowloris connections opened ({refused} refused by the "
        f"OS), a byte each every {args.trickle:g} s; the server closed {evicted}"
    )
    print(
        f"/healthz idle:      p50 {statistics.median(baseline):.2f} ms  "
        f"p95 {percentile(baseline, 0.95):.2f} ms  ({len(baseline)} probes)"
    )
    if latencies:
        print(
            f"/healthz attacked:  p50 {statistics.median(latencies):.2f} ms  "
            f"p95 {percentile(latencies, 0.95):.2f} ms  max {max(latencies):.2f} ms  "
            f"({len(latencies)} probes, {failures} failed)"
        )
    print(
        f"server RSS: before {rss_before:.1f} MB, peak {peak_rss:.1f} MB, after "
        f"{rss_after:.1f} MB (growth {rss_after - rss_before:+.1f} MB)"
    )
    print(f"server threads: before {threads_before}, peak {peak_threads}")


if __name__ == "__main__":
    main()
