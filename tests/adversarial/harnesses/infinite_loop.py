"""Hostile harness: an infinite loop that yields to the event loop (cooperative)."""

import asyncio


async def run(task, ctx):
    while True:
        await asyncio.sleep(0.01)
