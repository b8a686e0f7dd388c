"""Hostile harness: lifts its memory limit before allocating."""

import resource


async def run(task, ctx):
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    return str(len(bytearray(8 * 1024**3)))
