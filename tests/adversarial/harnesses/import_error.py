"""Hostile harness: imports a module that does not exist."""

import harnessopt_no_such_module_xyz  # noqa: F401


async def run(task, ctx):
    return task.input
