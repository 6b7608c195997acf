"""Helpers of the service tests (tests/serve/): a real ``deephash serve`` in a subprocess on a
free loopback port, stopped by its pid."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import httpx
import numpy as np

MAX_BATCH = 100
MAX_BODY = 200_000
MAX_RANGE_HITS = 1000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process; ``stop`` (SIGTERM, then SIGKILL) or ``kill`` (SIGKILL) it by pid."""

    def __init__(self, data: Path, token_file: Optional[Path] = None, snapshot_interval: float = 60.0,
                 extra: Sequence[str] = ()):
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "deephash_engine.cli", "serve", "--data", str(data),
               "--host", "127.0.0.1", "--port", str(self.port), "--max-batch", str(MAX_BATCH),
               "--max-body-bytes", str(MAX_BODY), "--max-range-hits", str(MAX_RANGE_HITS), "--snapshot-interval", str(snapshot_interval)]
        if token_file is not None:
            cmd += ["--token-file", str(token_file)]
        cmd += list(extra)
        self.log = open(data.parent / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=data.parent, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server not ready in {timeout} s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.data.parent / f"server-{self.port}.log").read_text(errors="replace")[-2000:]

    def client(self, token: Optional[str] = None) -> "httpx.Client":
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def b64(codes: np.ndarray) -> list[str]:
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in codes]
