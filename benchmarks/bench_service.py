"""`deephash serve` on loopback beside the same index searched in-process.

One run, same codes: the service (a subprocess on 127.0.0.1, one client with keep-alive) and an
in-process FlatIndex / MIHIndex, called alternately (one request, then the same queries
in-process). Measures search throughput for batches of 1 and 100 queries (k = 10), p50 / p99
latency, the latency the service adds at batch 1, the throughput with several concurrent clients
(--clients), and the sustained add rate with durability on (every acknowledged batch committed
with synchronous=FULL).

    python benchmarks/bench_service.py                       # 1M x 64-bit structured codes
    python benchmarks/bench_service.py --n 100000 --indexes flat --json out.json
    python benchmarks/bench_service.py --clients 1            # one client only
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_context import context, machine_line, print_table_header, wall_times  # noqa: E402
from codes_data import make_codes  # noqa: E402

import deephash_engine as de  # noqa: E402


def b64(codes: np.ndarray) -> list[str]:
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in codes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def start_server(data: Path, max_batch: int, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "deephash_engine.cli", "serve", "--data", str(data), "--port", str(port),
           "--max-batch", str(max_batch), "--snapshot-interval", "0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


class Lean:
    """A keep-alive HTTP/1.1 connection on a bare socket: the request's bytes written at once, the
    answer read by its content-length. The timings measure the service, not a client library:
    the standard library's http.client costs 0.25 ms per request here (it parses every answer's
    headers with the email package), httpx about 0.4 ms."""

    def __init__(self, url: str):
        self.url = url
        host, port = url.rsplit("//", 1)[1].split(":")
        self.address = (host, int(port))
        self.sock: socket.socket | None = None
        self.pending = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.pending = sock, b""
        return sock

    def post(self, path: str, body: str | bytes) -> bytes:
        data = body.encode() if isinstance(body, str) else body
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.address[0]}:{self.address[1]}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data
        try:
            return self._exchange(self.sock or self._connect(), path, request)
        except (ConnectionError, EOFError):  # the server closed an idle connection: once more on a new one
            self.sock.close()
            return self._exchange(self._connect(), path, request)

    def _exchange(self, sock: socket.socket, path: str, request: bytes) -> bytes:
        sock.sendall(request)
        buf = self.pending
        while b"\r\n\r\n" not in buf:
            buf += self._recv(sock)
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        if b"content-length" not in headers:
            raise RuntimeError(f"{path}: an answer without content-length ({headers})")
        size = int(headers[b"content-length"])
        while len(buf) < size:
            buf += self._recv(sock)
        self.pending = buf[size:]
        if status != 200:
            raise RuntimeError(f"{path}: {status} {buf[:200]!r}")
        return buf[:size]

    @staticmethod
    def _recv(sock: socket.socket) -> bytes:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError("the server closed the connection")
        return chunk


def summary(samples: list[float], queries_per_call: int) -> dict:
    return {"p50_ms": 1e3 * percentile(samples, 50), "p99_ms": 1e3 * percentile(samples, 99),
            "qps": queries_per_call * len(samples) / sum(samples)}


def interleaved(first, second, calls: int, warmup: int, block: int = 25,
                settle: int = 3) -> tuple[list[float], list[float]]:
    """Wall times of first(i) and second(i), alternated in blocks of ``block`` timed calls, each
    block after ``settle`` untimed calls: the service and the in-process index see the same machine
    load (on a shared machine, timing one after the other compared two different loads), while
    neither disturbs the other call by call (one process's core threads still polling for work,
    its index in the caches, when the other's call starts)."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(warmup):
        first(i)
        second(i)
    for start in range(0, calls, block):
        for fn, out in zip((first, second), times):
            for i in range(start, start + settle):
                fn(warmup + i)
            for i in range(start, min(calls, start + block)):
                t0 = time.perf_counter()
                fn(warmup + i)
                out.append(time.perf_counter() - t0)
    return times


def concurrent_qps(make_call, clients: int, calls: int, batch: int) -> float:
    """Queries per second of ``clients`` threads, each making ``calls`` calls of make_call(c)
    (after 5 warm-up calls), timed from a common start to the last one's end."""
    start = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        call = make_call(c)
        for i in range(5):
            call(i)
        start.wait()
        for i in range(calls):
            call(i)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return clients * calls * batch / (time.perf_counter() - t0)


def bench_index(http: httpx.Client, lean: Lean, kind: str, db: np.ndarray, queries: np.ndarray, args) -> dict:
    nbits = db.shape[1] * 8
    name = f"bench-{kind}"
    http.post("/collections", json={"name": name, "nbits": nbits, "index": kind}).raise_for_status()
    # bulk load: batches of args.add_batch, each one committed before the next is sent
    t0 = time.perf_counter()
    for start in range(0, len(db), args.add_batch):
        http.post(f"/collections/{name}/items", json={"codes": b64(db[start:start + args.add_batch])}).raise_for_status()
    bulk_rate = len(db) / (time.perf_counter() - t0)
    # small durable writes: one item per request, each an fsync'ed transaction
    extra = make_codes("uniform", args.small_adds, nbits, seed=9)
    bodies = iter([json.dumps({"codes": [code]}) for code in b64(extra)])
    single = wall_times(lambda: lean.post(f"/collections/{name}/items", next(bodies)), args.small_adds - 20, warmup=20)

    http.post(f"/collections/{name}/snapshot").raise_for_status()  # merges an MIH tail now
    local = de.FlatIndex(nbits) if kind == "flat" else de.MIHIndex(nbits)
    local.add(db)
    local.add(extra)  # the same ids and codes as the service holds
    if kind == "mih":
        local.compact()
    out = {"index": kind, "n": len(db), "nbits": nbits, "bulk_add_items_per_s": bulk_rate,
           "add_batch": args.add_batch, "single_add": summary(single, 1)}
    for batch, calls in ((1, args.calls_b1), (100, args.calls_b100)):
        qs = [queries[(i * batch) % (len(queries) - batch):][:batch] for i in range(calls + 50)]
        bodies = [json.dumps({"codes": b64(q), "k": args.k}) for q in qs]
        remote, in_process = interleaved(lambda i: lean.post(f"/collections/{name}/search", bodies[i]),
                                         lambda i: local.search(qs[i], args.k), calls, warmup=20)
        served, inproc = summary(remote, batch), summary(in_process, batch)
        out[f"batch{batch}"] = {"service": served, "in_process": inproc,
                                "throughput_ratio": served["qps"] / inproc["qps"],
                                "added_p50_ms": served["p50_ms"] - inproc["p50_ms"]}
        if args.clients > 1:  # sustained throughput: requests overlap, as from a service's many callers
            def remote_call(c):
                conn = Lean(lean.url)
                return lambda i: conn.post(f"/collections/{name}/search", bodies[(c * 7 + i) % len(bodies)])

            each = max(1, calls // args.clients)
            service_qps = concurrent_qps(remote_call, args.clients, each, batch)
            local_qps = concurrent_qps(lambda c: lambda i: local.search(qs[(c * 7 + i) % len(qs)], args.k),
                                       args.clients, each, batch)
            out[f"batch{batch}"]["concurrent"] = {"clients": args.clients, "service_qps": service_qps,
                                                  "in_process_qps": local_qps, "ratio": service_qps / local_qps}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--nbits", type=int, default=64)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--kind", default="structured", choices=["structured", "uniform"])
    p.add_argument("--indexes", default="flat,mih")
    p.add_argument("--add-batch", type=int, default=10_000)
    p.add_argument("--small-adds", type=int, default=300)
    p.add_argument("--calls-b1", type=int, default=2000)
    p.add_argument("--calls-b100", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4,
                   help="also measure throughput with this many concurrent clients (threads, one keep-alive "
                        "connection each; the in-process index with as many calling threads); 1: skip")
    p.add_argument("--server-args", default="",
                   help="more options of `deephash serve`, written with \"=\": --server-args=--no-fast-lane")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()

    db = make_codes(args.kind, args.n, args.nbits, seed=1)
    queries = make_codes(args.kind, 10_000, args.nbits, seed=1, role="queries")
    ctx = context(de.get_num_threads())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "data", max(args.add_batch, 100), tuple(shlex.split(args.server_args)))
        try:
            with httpx.Client(base_url=url, timeout=300) as http:
                lean = Lean(url)
                for kind in args.indexes.split(","):
                    rows.append(bench_index(http, lean, kind, db, queries, args))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait()

    print(f"{machine_line(ctx)}; SIMD {ctx['simd_level']}, {ctx['threads']} threads; "
          f"{args.n} x {args.nbits}-bit {args.kind} codes, k = {args.k}; service and client on one machine"
          + (f"; serve {args.server_args}" if args.server_args else ""))
    print_table_header(f"{'index':6} {'batch':>5} {'service q/s':>12} {'in-proc q/s':>12} {'ratio':>6} "
                       f"{'svc p50 ms':>10} {'svc p99 ms':>10} {'in-proc p50':>11} {'added p50':>9}")
    for row in rows:
        for batch in (1, 100):
            r = row[f"batch{batch}"]
            s, i = r["service"], r["in_process"]
            print(f"{row['index']:6} {batch:5d} {s['qps']:12.0f} {i['qps']:12.0f} {r['throughput_ratio']:6.2f} "
                  f"{s['p50_ms']:10.3f} {s['p99_ms']:10.3f} {i['p50_ms']:11.3f} {r['added_p50_ms']:9.3f}")
    if args.clients > 1:
        print(f"\n{args.clients} concurrent clients (in-process: {args.clients} calling threads)")
        print_table_header(f"{'index':6} {'batch':>5} {'service q/s':>12} {'in-proc q/s':>12} {'ratio':>6}")
        for row in rows:
            for batch in (1, 100):
                c = row[f"batch{batch}"]["concurrent"]
                print(f"{row['index']:6} {batch:5d} {c['service_qps']:12.0f} {c['in_process_qps']:12.0f} {c['ratio']:6.2f}")
    for row in rows:
        sa = row["single_add"]
        print(f"{row['index']}: bulk add {row['bulk_add_items_per_s']:.0f} items/s (batches of {row['add_batch']}); "
              f"single-item adds {sa['qps']:.0f}/s, p50 {sa['p50_ms']:.2f} ms, p99 {sa['p99_ms']:.2f} ms")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"context": ctx, "args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
