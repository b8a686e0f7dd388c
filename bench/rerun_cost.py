"""A rerun of a finished run costs 0 model calls.

Reruns finished runs (an optimize run, a GEPA run, a sample-arm run, or every finished run of an
experiment) from their own directories through a gateway that counts every call reaching a model,
and prints one line per run: the calls made (expected 0), the rollouts and meta-model replies the
run holds (what the rerun was served from its caches instead), and the seconds it took.

Rollouts are cached by (harness code hash, benchmark fingerprint, task, trial, model, decoding
parameters); meta-model replies (the meta-agent's and GEPA's reflections) by their exact request.
A rerun replays the run from the start against these caches and writes nothing twice.

    python bench/rerun_cost.py traces/bench/<experiment>      # every finished run of an experiment
    python bench/rerun_cost.py traces/<run_id> [...]          # single runs (optimize, gepa, sample)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

from harnessopt.benchmark import load_benchmark
from harnessopt.llm import Gateway
from harnessopt.optimizer import optimize_async
from harnessopt.sampling import run_sample_async


class CountingGateway(Gateway):
    """The real gateway, counting the calls that reach a model (per model)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def chat(self, model, messages, params=None, **kwargs):  # noqa: ANN001
        self.calls[model] += 1
        return await super().chat(model, messages, params, **kwargs)

    async def complete(self, model, prompt, params=None, **kwargs):  # noqa: ANN001
        self.calls[model] += 1
        return await super().complete(model, prompt, params, **kwargs)


def finished_runs(path: Path) -> list[tuple[Path, dict | None]]:
    """(run directory, the experiment's spec or None) for every finished run under `path`."""
    if (path / "experiment.json").is_file():
        spec = json.loads((path / "experiment.json").read_text())["spec"]
        dirs = sorted(path.glob("runs/*")) + sorted(path.glob("gepa/*"))
        return [(d, spec) for d in dirs if _finished(d)]
    return [(path, None)] if _finished(path) else []


def _finished(d: Path) -> bool:
    try:
        return bool(json.loads((d / "run.json").read_text()).get("finished"))
    except (OSError, ValueError):
        return False


async def rerun(run_dir: Path, spec: dict | None) -> str:
    info = json.loads((run_dir / "run.json").read_text())
    config = info["config"]
    # An experiment's runs share its splits (split_seed); a single run's come from its own seed.
    bench = load_benchmark(config["benchmark"], data=config.get("data"),
                           seed=spec.get("split_seed", 0) if spec else config.get("seed", 0))
    rollouts = sum(1 for _ in (run_dir / "rollouts").rglob("*.json"))
    replies = sum(1 for _ in (run_dir / "meta_cache").glob("*.json"))
    gateway = CountingGateway()
    started = time.time()
    kind = info.get("kind")
    if kind == "gepa":
        from harnessopt.peers.gepa_run import run_gepa_async

        result = await run_gepa_async(resume=run_dir, benchmark=bench, gateway=gateway)
    elif kind == "sample":
        result = await run_sample_async(resume=run_dir, benchmark=bench, gateway=gateway)
    else:
        result = await optimize_async(resume=run_dir, benchmark=bench, gateway=gateway)
    same = result.champion_test.score == info["result"]["champion_test"]["score"]
    calls = sum(gateway.calls.values())
    return (f"rerun of {run_dir.name} ({kind}): {calls} model calls{' ' + dict(gateway.calls).__repr__() if calls else ''}; "
            f"served {rollouts} rollouts and {replies} meta replies from its caches; {time.time() - started:.1f} s; "
            f"same test result: {'yes' if same else 'NO'}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    total = 0
    for arg in argv:
        runs = finished_runs(Path(arg))
        if not runs:
            print(f"{arg}: no finished run here")
        for run_dir, spec in runs:
            line = asyncio.run(rerun(run_dir, spec))
            total += int(line.split(": ", 1)[1].split()[0])
            print(line, flush=True)
    print(f"total model calls in the reruns: {total}")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
