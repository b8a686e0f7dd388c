"""Hostile harness: no `run` entry point. Refused at validation, never run."""


async def solve(task, ctx):
    return task.input
