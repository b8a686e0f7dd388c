"""Hostile harness: calls a model provider directly over HTTP, around the broker."""

import json
import urllib.request


async def run(task, ctx):
    req = urllib.request.Request("https://api.openai.com/v1/chat/completions", data=json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": task.input}]}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3) as resp:
        return resp.read().decode()
