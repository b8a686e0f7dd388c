"""The far side of the process boundary: code that runs inside a sandboxed process.

Everything in this package runs in a worker (``python -m harnessopt.worker``) or in a child of
``harnessopt.sandbox.run_python``; the parent imports only `ipc` (the wire) from here. A worker
imports nothing of harnessopt beyond this package, `records` and `examples`: no litellm, no
datasets, so it starts in well under a second and holds no secrets.

    __main__.py   worker entry point: limits, guard, then serve rollouts
    loop.py       the worker's message loop; runs one rollout at a time
    context.py    the `ctx` harness code sees; each model/tool call is a request to the parent
    workspace.py  `ctx.workspace`: a task's files in the rollout's scratch folder, the tools on them
    readonly.py   objects harness code cannot change (ctx and what hangs off it)
    isolation.py  what keeps one rollout from changing the worker or the next rollout
    ipc.py        length-prefixed JSON over a private socket: the only wire to the parent
    guard.py      the audit hook in every sandboxed process (standard library only)
    launcher.py   first code in a run_python child: limits, guard, main.py (standard library only)
    landlock.py   kernel filesystem confinement for run_python children (standard library only)
"""
