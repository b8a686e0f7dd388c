"""A Ray cluster on loopback for tests: `ray start` processes (a head, optionally more nodes).

Each node is one `ray start --block` process in its own process group; stopping a node sends it
SIGTERM (it stops the Ray processes it started), losing one SIGKILLs its whole group (a node
that vanishes). Token authentication stays on, with a token made for this cluster.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    def __init__(self) -> None:
        # Short: Ray's socket paths live under it and must stay under the OS's 107 characters.
        self.temp_dir = tempfile.mkdtemp(prefix="rt")
        self.port = free_port()
        # Ray replaces 127.0.0.1 ("localhost") by the machine's outward address; other loopback
        # addresses it takes as they are. Each node gets its own: 127.0.0.2, 127.0.0.3, ...
        self.address = f"127.0.0.2:{self.port}"
        self.env = {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        self.nodes: list[subprocess.Popen] = []
        self.client_address: str | None = None

    def _start(self, args: list[str], cpus: float, resources: str | None) -> subprocess.Popen:
        ray = shutil.which("ray")
        if ray is None:
            raise RuntimeError("the ray command is not installed")
        log = Path(self.temp_dir, f"node{len(self.nodes)}.log")
        cmd = [ray, "start", *args, f"--node-ip-address=127.0.0.{len(self.nodes) + 2}", f"--num-cpus={cpus:g}", "--object-store-memory=80000000",
               f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}",
               "--disable-usage-stats", "--block"]
        if resources:
            cmd.append(f"--resources={resources}")
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                                    start_new_session=True, stdin=subprocess.DEVNULL)
        self.nodes.append(proc)
        deadline = time.monotonic() + 90
        while b"Ray runtime started" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        return proc

    def start_head(self, cpus: float = 2, resources: str | None = None, client: bool = False) -> "LoopbackCluster":
        """The head; with `client`, also a Ray Client server (needs ray[client]) at `client_address`."""
        args = ["--head", f"--port={self.port}", f"--temp-dir={self.temp_dir}", "--include-dashboard=false"]
        if client:
            port = free_port()
            args.append(f"--ray-client-server-port={port}")
            self.client_address = f"ray://127.0.0.2:{port}"
        self._start(args, cpus, resources)
        return self

    def add_node(self, cpus: float = 2, resources: str | None = None) -> subprocess.Popen:
        return self._start([f"--address={self.address}"], cpus, resources)

    def lose_node(self, proc: subprocess.Popen) -> None:
        """The node vanishes: every process of it is SIGKILLed at once."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in reversed(self.nodes):  # the head last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind
            except (ProcessLookupError, PermissionError):
                pass
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
