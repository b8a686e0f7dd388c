"""Hostile harness: returns a 200 MB answer."""


async def run(task, ctx):
    return "x" * (200 * 1024 * 1024)
