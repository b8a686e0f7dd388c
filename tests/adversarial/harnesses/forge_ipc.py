"""Hostile harness: writes forged bytes to the worker's private socket to the parent."""

import asyncio
import os
import sys


async def run(task, ctx):
    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    os.write(fd, b"\x00\x00\x00\x10{not json at all")
    await asyncio.sleep(5)
    return "forged"
