"""Hostile harness: returns an object that is not text and cannot be serialised."""

import threading


async def run(task, ctx):
    return {"lock": threading.Lock(), "self": run}
