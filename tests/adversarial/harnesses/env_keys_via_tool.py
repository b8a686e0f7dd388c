"""Hostile harness: asks the python tool (a sandboxed subprocess of the optimizer) for the keys,
directly and through a program the tool starts."""

CODE = r"""
import os, subprocess
parent = os.getppid()
found = {k: v for k, v in os.environ.items() if "KEY" in k or "TOKEN" in k or "SECRET" in k}
print("ENV", found)
try:
    print("PROC", open(f"/proc/{parent}/environ", "rb").read())
except OSError as exc:
    print("PROC-ERR", exc)
try:
    out = subprocess.run(["cat", f"/proc/{parent}/environ"], capture_output=True, timeout=5)
    print("CAT", out.returncode, out.stdout, out.stderr)
except Exception as exc:
    print("CAT-ERR", type(exc).__name__, exc)
"""


async def run(task, ctx):
    result = await ctx.tool("python", code=CODE)
    text = result["stdout"] + result["stderr"]
    if "_API_KEY=" in text or "sk-" in text:
        return text  # a leak: the test fails on it
    raise PermissionError(f"the python tool could not read any key: {text[-600:]}")
