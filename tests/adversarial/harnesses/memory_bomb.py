"""Hostile harness: allocates memory until something stops it."""


async def run(task, ctx):
    hoard = []
    while True:
        hoard.append(bytearray(256 * 1024 * 1024))
