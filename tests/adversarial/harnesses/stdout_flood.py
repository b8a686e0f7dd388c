"""Hostile harness: writes gigabytes to stdout."""

import sys


async def run(task, ctx):
    chunk = "x" * (1 << 20)
    for _ in range(4096):  # 4 GiB
        sys.stdout.write(chunk)
    return "flooded"
