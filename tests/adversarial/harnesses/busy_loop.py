"""Hostile harness: a busy CPU loop that never yields and ignores cancellation."""


async def run(task, ctx):
    n = 0
    while True:
        n += 1
