"""Hostile harness: calls libc through ctypes to get around Python-level checks."""

import ctypes


async def run(task, ctx):
    libc = ctypes.CDLL(None)
    libc.system(b"touch /tmp/harnessopt-adversarial-ctypes-canary")
    return "escaped"
