"""`python -m harnessopt.worker --fd N --scratch DIR ...`: one sandboxed worker process.

The runner starts it in its own session with an environment that holds no API keys; it sets its
limits, installs the guard, then serves rollouts over the socket on fd N until told to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket

from harnessopt.worker import ipc
from harnessopt.worker.isolation import harden_process
from harnessopt.worker.loop import Worker


async def _serve(fd: int, scratch_root: str) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=ipc.MAX_MESSAGE_BYTES)
    await Worker(reader, writer, scratch_root).serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harnessopt.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--protect", action="append", default=[], help="a folder harness code may never read")
    parser.add_argument("--no-guard", action="store_true", help="do not install the audit-hook guard")
    args = parser.parse_args(argv)
    os.chdir(args.scratch)
    harden_process(args.memory_mb, log_fd=2)
    if not args.no_guard:
        from harnessopt.worker import guard

        guard.install([args.scratch], deny_roots=args.protect, allow_processes=False)
    asyncio.run(_serve(args.fd, args.scratch))


if __name__ == "__main__":
    main()
