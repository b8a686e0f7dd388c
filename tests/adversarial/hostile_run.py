"""Driver for the hostile-harness run (not a test module): `python hostile_run.py WORKDIR`.

Runs one optimize run in this process on a small benchmark read from WORKDIR/bench (its data
files hold the targets a hostile harness would like to find), with a stub task model and a
scripted meta-agent that proposes every harness in tests/adversarial/harnesses/ and fully
evaluates it, then spot-checks a good harness to show the pool recovered. It writes
WORKDIR/outcome.json. The test starts it as a subprocess so that the secrets it is given are
in its real environment block, where a harness reading /proc/<parent>/environ would find them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: stubs, scripted

from harnessopt.benchmark import load_benchmark  # noqa: E402
from harnessopt.budget import Budget  # noqa: E402
from harnessopt.optimizer import OptimizeConfig, optimize_async  # noqa: E402
from harnessopt.runner import LocalProcessExecutor  # noqa: E402
from scripted import ScriptedProposer  # noqa: E402
from stubs import StubGateway  # noqa: E402

SEARCH = range(1, 5)
TEST = range(50, 53)
TRAIN = range(100, 108)
SEED = '''"""Seed: right on odd inputs only (search score 0.5), so a cheater would look better."""


async def run(task, ctx):
    verb = "double" if int(task.input) % 2 else "echo"
    return (await ctx.complete(f"{verb} {task.input}")).strip()
'''
GOOD = '''async def run(task, ctx):
    return (await ctx.complete(f"double {task.input}")).strip()
'''


def target(n: int) -> str:
    return f"answer-{2 * n}-kq"


def stub_model(prompt: str) -> str:
    verb, _, n = prompt.partition(" ")
    value = int(n) * 2 if verb == "double" else int(n)
    return f" answer-{value}-kq"


def hostile_files() -> list[Path]:
    skip = set(filter(None, os.environ.get("HOSTILE_SKIP", "").split(",")))
    return sorted(p for p in (HERE / "harnesses").glob("*.py") if p.name not in skip)


def write_benchmark(workdir: Path) -> Path:
    bench = workdir / "bench"
    (bench / "data").mkdir(parents=True, exist_ok=True)

    def rows(ns, prefix, tgt):
        return "".join(json.dumps({"id": f"{prefix}{n}", "input": str(n), "target": tgt(n)}) + "\n" for n in ns)

    (bench / "data" / "train.jsonl").write_text(rows(TRAIN, "tr", lambda n: f"train-{n}-ok"))
    (bench / "data" / "search.jsonl").write_text(rows(SEARCH, "s", target))
    (bench / "data" / "test.jsonl").write_text(rows(TEST, "t", target))
    spec = bench / "adversarial.toml"
    spec.write_text('''name = "adversarial"
task_shape = "short_answer"

[source]
data_dir = "data"
files = { train = "train.jsonl", search = "search.jsonl", test = "test.jsonl" }

[fields]
id = "id"
input = "input"
target = "target"

[splits]
train = "train"
search = "search"
test = "test"

[scorer]
name = "exact"
''')
    return spec


def prepare(workdir: Path) -> Path:
    """The benchmark files and the seed harness (the test writes them first, to watch them)."""
    spec = workdir / "bench" / "adversarial.toml"
    if not spec.is_file():
        write_benchmark(workdir)
    if not (workdir / "seed.py").is_file():
        (workdir / "seed.py").write_text(SEED)
    return spec


async def main(workdir: Path) -> None:
    spec = prepare(workdir)
    script, names = [], []
    for i, path in enumerate(hostile_files(), start=1):
        cid = f"c{i:04d}"
        names.append((path.name, cid))
        script += [{"action": "write_harness", "code": path.read_text(), "hypothesis": f"hostile: {path.stem}"},
                   {"action": "full_eval", "candidate": cid}]
    good = f"c{len(names) + 1:04d}"
    script += [{"action": "write_harness", "code": GOOD, "hypothesis": "a good harness after the hostile ones"},
               {"action": "spot_check", "candidate": good, "task_ids": [f"s{n}" for n in SEARCH]}]
    proposer = ScriptedProposer([script])
    config = OptimizeConfig(harness=str(workdir / "seed.py"), benchmark=str(spec), task_model="local/stub-double",
                            meta_model="scripted", budget=Budget(iterations=1, rollouts=2000),
                            timeout_s=1.5, concurrency=2, out=str(workdir / "runs"))
    executor = LocalProcessExecutor(2, memory_mb=1024, kill_grace_s=0.5)
    scratch = executor._scratch
    result = await optimize_async(config, proposer=proposer, gateway=StubGateway(stub_model), executor=executor,
                                  benchmark=load_benchmark(spec))
    (workdir / "outcome.json").write_text(json.dumps({
        "result": result.model_dump(mode="json", exclude={"history"}),
        "candidates": dict(names), "good": good, "observations": proposer.observations,
        "pid": os.getpid(), "scratch": scratch,
    }, indent=1))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
