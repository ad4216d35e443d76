"""Load test of ``rmroute serve-rm``: many clients against one server on 127.0.0.1.

    .venv/bin/python benchmarks/serve_rm_load.py                          # this checkout
    .venv/bin/python benchmarks/serve_rm_load.py --tree /tmp/base --tree .  # before / after, one run
    .venv/bin/python benchmarks/serve_rm_load.py --clients 20 --requests 200 --items 4

For each ``--tree`` (a checkout of rmroute; default: the one holding this script) it starts
``rmroute serve-rm TREE/configs/serve-rm-length.yaml --port 0`` in a subprocess that imports that
tree's code (PYTHONPATH=TREE), so the server is the cheap ``length`` RM and the figures show the
HTTP server's own cost. Then, in two modes, ``--clients`` threads each send ``--requests`` POST
/get_reward requests of ``--items`` items, all starting together:

* keep-alive:     one HTTP/1.1 connection per client, reused for every request;
* new connection: a new TCP connection per request (connect, request, answer, close), as clients
                  without connection pooling do.

Per mode it prints: throughput (answered requests per second of wall time), p50 / p99 latency
of answered requests (connect included in the new-connection mode), connection resets (the server
reset or closed the connection before answering: ``ConnectionResetError``, including
``RemoteDisconnected``), other errors (timeouts, refused connections, non-200 answers, wrong
rewards), and the growth of the kernel's ``TcpExt ListenOverflows`` counter (Linux, whole network
namespace: connections dropped because the listen queue was full). Every answer is checked against
the rewards of a warm-up request. The server writes its one log line per request to a pipe this
script drains, as a terminal would.

The client threads share one Python process (and its GIL) with each other, not with the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
MODES = ("keep-alive", "new connection")
_SERVING = re.compile(r"serving .* on http://([0-9.]+):(\d+)")


@dataclass
class ModeResult:
    mode: str
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    resets: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    listen_overflows: int | None = None

    def add_error(self, kind: str, reset: bool = False) -> None:
        if reset:
            self.resets += 1
        else:
            self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def listen_overflows() -> int | None:
    """The kernel's TcpExt ListenOverflows counter, or None where /proc/net/netstat is missing."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table["ListenOverflows"]) if "ListenOverflows" in table else None
    return None


class Server:
    """``rmroute serve-rm`` of one tree in a subprocess; its stderr is drained by a thread."""

    def __init__(self, tree: Path) -> None:
        config = tree / "configs" / "serve-rm-length.yaml"
        if not config.is_file():
            raise SystemExit(f"--tree {tree}: no configs/serve-rm-length.yaml there (not an rmroute checkout?)")
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONUNBUFFERED="1")
        launcher = (
            "import sys, rmroute.harness.serve as s; print('server module', s.__file__, file=sys.stderr, flush=True); "
            "from rmroute.harness.cli import main; sys.exit(main(sys.argv[1:]))"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", launcher, "serve-rm", str(config), "--port", "0"],
            cwd=tree, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log_lines = 0
        self.module = "?"
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 60
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise SystemExit(f"{tree}: serve-rm did not print its address within 60 s")
            if line.startswith("server module "):
                self.module = line.split(" ", 2)[2].strip()
            match = _SERVING.search(line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                break

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log_lines += 1
            if self.log_lines <= 5:  # only the start-up lines are read; the rest is drained
                self.lines.put(line)
        self.lines.put("")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_body(items: int) -> tuple[bytes, list[float]]:
    prompts = [f"Question {i}: what is {i} + {i}? " for i in range(items)]
    responses = [" ".join(["word"] * (3 + i)) for i in range(items)]
    body = {"query": [p + r for p, r in zip(prompts, responses)], "prompts": prompts}
    return json.dumps(body).encode("utf-8"), [float(3 + i) for i in range(items)]


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/get_reward", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def run_mode(server: Server, mode: str, clients: int, requests: int, body: bytes, expected: bytes) -> ModeResult:
    result = ModeResult(mode)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    keep_alive = mode == "keep-alive"

    def client() -> None:
        latencies: list[float] = []
        failures: list[tuple[str, bool]] = []
        conn: http.client.HTTPConnection | None = None
        start.wait()
        for _ in range(requests):
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
                status, data = post(conn, body)
                if status != 200:
                    failures.append((f"HTTP {status}", False))
                elif data != expected:
                    failures.append(("wrong rewards", False))
                else:
                    latencies.append(time.perf_counter() - t0)
            except ConnectionResetError as exc:  # RemoteDisconnected is one too
                failures.append((type(exc).__name__, True))
                conn.close()
                conn = None
                continue
            except (OSError, http.client.HTTPException) as exc:
                failures.append((type(exc).__name__, False))
                if conn is not None:
                    conn.close()
                conn = None
                continue
            if not keep_alive:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            result.latencies.extend(latencies)
            for kind, reset in failures:
                result.add_error(kind, reset)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    overflows_before = listen_overflows()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - t0
    overflows_after = listen_overflows()
    if overflows_before is not None and overflows_after is not None:
        result.listen_overflows = overflows_after - overflows_before
    return result


def row(tree: str, r: ModeResult, total: int) -> str:
    ok = len(r.latencies)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(r.error_kinds.items())) or "-"
    overflow = "n/a" if r.listen_overflows is None else str(r.listen_overflows)
    return (
        f"| {tree} | {r.mode} | {ok}/{total} | {ok / r.wall_s:,.0f} | {r.percentile(0.5) * 1000:.1f} | "
        f"{r.percentile(0.99) * 1000:.1f} | {max(r.latencies, default=float('nan')) * 1000:.1f} | "
        f"{r.resets} | {r.errors} | {overflow} | {kinds} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", type=Path,
                    help="an rmroute checkout whose serve-rm to load (repeatable; default: this one)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200, help="requests per client and mode")
    ap.add_argument("--items", type=int, default=4, help="items per request")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from: {', '.join(MODES)}")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            ap.error(f"--modes: unknown mode {m!r}; choose from {', '.join(MODES)}")
    if args.clients < 1 or args.requests < 1 or args.items < 1:
        ap.error("--clients, --requests and --items must be >= 1")
    trees = [t.resolve() for t in (args.tree or [HERE])]
    body, rewards = make_body(args.items)
    total = args.clients * args.requests

    print(f"# serve-rm load: {args.clients} clients x {args.requests} requests x {args.items} items, "
          f"127.0.0.1, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    lines = [
        "| tree | mode | answered | req/s | p50 ms | p99 ms | max ms | resets | other errors | listen overflows | failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tree in trees:
        server = Server(tree)
        try:
            print(f"{tree}: serving {server.module} on {server.host}:{server.port}", flush=True)
            conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
            status, expected = post(conn, body)  # warm-up; every later answer must equal it
            conn.close()
            if status != 200 or json.loads(expected)["rewards"] != rewards:
                raise SystemExit(f"{tree}: warm-up answer {status} {expected[:200]!r}, expected rewards {rewards}")
            for mode in modes:
                r = run_mode(server, mode, args.clients, args.requests, body, expected)
                lines.append(row(str(tree), r, total))
                print(lines[-1], flush=True)
        finally:
            server.stop()
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
