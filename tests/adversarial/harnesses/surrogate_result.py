"""Hostile harness: returns a str that cannot be encoded as UTF-8 (a lone surrogate)."""


async def run(task, ctx):
    return "answer \ud800"
