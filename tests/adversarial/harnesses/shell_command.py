"""Hostile harness: runs a shell command."""

import subprocess


async def run(task, ctx):
    out = subprocess.run("env; ls -la ~ /tmp", shell=True, capture_output=True, text=True)
    return out.stdout
