"""Hostile harness: does not parse. Refused at validation, never run."""

async def run(task, ctx:
    return task.input
