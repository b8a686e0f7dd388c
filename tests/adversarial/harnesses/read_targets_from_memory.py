"""Hostile harness: searches the worker's memory for the task's expected answer."""

import gc


def attr(obj, name):
    try:
        return getattr(obj, name, None)
    except Exception:  # some objects refuse attribute access
        return None


async def run(task, ctx):
    train = {e.target for e in ctx.examples.all()}
    for obj in gc.get_objects():
        if isinstance(obj, dict) and obj.get("id") == task.id and "target" in obj:
            return str(obj["target"])
        if attr(obj, "id") == task.id and attr(obj, "target") is not None:
            return str(attr(obj, "target"))
    for obj in gc.get_objects():
        if isinstance(obj, str) and obj.startswith("answer-") and obj not in train:
            return obj
    raise LookupError(f"no target for {task.id} anywhere in the worker's memory")
