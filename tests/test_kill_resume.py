"""SIGKILL (or Ctrl-C) the optimizer at seeded random points, resume, compare with an uninterrupted run.

A small driver (this file, run as a script) runs `optimize_async` with real sandboxed workers, a
stub task model and a deterministic LLM meta-agent, both of which append every call they answer
to a call log. Kill points are of two kinds, all real SIGKILLs of the driver process:
  * at the N-th durable write of the run directory (an atomic rename or an append), just before
    or just after it: every step of the write protocol gets hit;
  * after a random delay: wherever the run happens to be (rollouts in flight, a meta call, ...);
  * SIGINT (what Ctrl-C sends) after a random delay: the run must stop without recording any
    interrupted rollout as a result.
After each kill the run directory must be consistent; after resuming to the end, the run must
equal the uninterrupted one, no rollout or meta response completed before a kill may be paid
for again, and every rollout file that existed at a kill is still there, unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SEED = 'async def run(task, ctx):\n    return (await ctx.complete("echo " + task.input)).strip()\n'
GOOD = 'async def run(task, ctx):\n    return (await ctx.complete("double " + task.input)).strip()\n'
WORSE = 'async def run(task, ctx):\n    return "nothing"\n'
def _write(code: str, hypothesis: str) -> str:
    return json.dumps({"action": "write", "predicted": 0.5, "hypothesis": hypothesis}) + "\n```python\n" + code + "```"


META_SCRIPT = {  # iteration -> the meta-agent's replies, step by step
    1: [{"action": "read_harness", "candidate": "c0000"},
        _write(GOOD, "double instead of echo"),
        {"action": "screen", "candidates": ["c0001"], "task_ids": ["search-1", "search-2"]},
        {"action": "full_eval", "candidate": "c0001"},
        {"action": "finish", "note": "doubling fixed it"}],
    2: [{"action": "list_failures", "candidate": "c0001"},
        _write(WORSE, "a constant"),
        {"action": "full_eval", "candidate": "c0002"},
        {"action": "finish", "note": "constant is worse"}],
}
TRIALS = 24  # kill trials, each in its own run directory (every third is killed twice)


# =========================================================================== the driver


def _log_call(path: str, record: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def drive(root: str, call_log: str, resume: bool, kill_at_write: int | None, kill_after: str) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # Ctrl-C as in a terminal, even when the test runs where SIGINT is ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from harnessopt.benchmark import Benchmark
    from harnessopt.budget import Budget
    from harnessopt.meta.llm_proposer import LLMProposer
    from harnessopt.meta.protocol import ProtocolSettings
    from harnessopt.optimizer import OptimizeConfig, optimize_async
    from harnessopt.records import LLMResponse
    from harnessopt.runner import LocalProcessExecutor

    def item(n, split):
        return {"id": f"{split}-{n}", "input": str(n), "target": str(2 * n)}

    bench = Benchmark.from_records(
        "arith", train=[item(n, "train") for n in range(100, 106)],
        search=[item(n, "search") for n in range(1, 7)], test=[item(n, "test") for n in range(50, 53)],
        scorer="exact")

    class TaskModel:
        usage = None

        async def complete(self, model, prompt, params=None, **_):
            _log_call(call_log, {"pid": os.getpid(), "kind": "task", "prompt": prompt, "seed": params.seed})
            verb, _, n = prompt.partition(" ")
            text = f" {int(n) * 2}" if verb == "double" else f" {n}"
            return LLMResponse(model=model, text=text, prompt_tokens=2, completion_tokens=1)

        chat = complete

    class MetaModel:
        def supports_tools(self, model):
            return False

        async def chat(self, model, messages, params=None, **kwargs):
            it, step = divmod(params.seed % 1000, 100)
            # The key LLMProposer caches this response under (meta_cache/<key>.json).
            request = {"model": model, "messages": messages, "params": params.model_dump(), **kwargs}
            key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest() + ".json"
            _log_call(call_log, {"pid": os.getpid(), "kind": "meta", "it": it, "step": step, "key": key})
            script = META_SCRIPT.get(it, [])
            reply = script[step] if step < len(script) else {"action": "finish"}
            text = reply if isinstance(reply, str) else json.dumps(reply)
            return LLMResponse(model=model, text=text, prompt_tokens=50, completion_tokens=10)

    writes = _arm_write_kill(kill_at_write or 0, kill_after)

    config = OptimizeConfig(harness=str(Path(root) / "seed.py"), benchmark="arith", task_model="local/stub",
                            meta_model="local/meta-stub", budget=Budget(iterations=2, rollouts=400),
                            timeout_s=20, concurrency=2, out=root)
    if not resume:
        Path(config.harness).write_text(SEED)
    proposer = LLMProposer(MetaModel(), "local/meta-stub", temperature=0.0, max_tokens=200,
                           settings=ProtocolSettings(proposals=1))
    print("READY", flush=True)
    result = asyncio.run(optimize_async(
        None if resume else config, resume=str(Path(root) / "run") if resume else None, proposer=proposer,
        gateway=TaskModel(), executor=LocalProcessExecutor(2, kill_grace_s=0.5), benchmark=bench, run_id="run"))
    Path(root, "writes").write_text(str(writes["n"]))
    Path(root, "result.json").write_text(result.model_dump_json(indent=1))


def _arm_write_kill(n: int, when: str) -> dict:
    """Count durable writes of the run directory; SIGKILL this process at the n-th (before or
    after it), unless n is 0."""
    import harnessopt.files as files

    count = {"n": 0}
    real_replace, real_append = os.replace, files.append_line

    def hit(do):
        count["n"] += 1
        if count["n"] == n and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = do()
        if count["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    os.replace = lambda src, dst, **kw: hit(lambda: real_replace(src, dst, **kw))
    files.append_line = lambda path, text: hit(lambda: real_append(path, text))
    return count


# =========================================================================== the test

def _start(root: Path, log: Path, resume: bool, kill_at_write: int | None = None, when: str = "after"):
    cmd = [sys.executable, str(Path(__file__).resolve()), str(root), str(log), "resume" if resume else "new",
           str(kill_at_write or 0), when]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
                            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"})


def _run(root: Path, log: Path, resume: bool, **kw) -> int:
    proc = _start(root, log, resume, **kw)
    out, err = proc.communicate(timeout=120)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"driver failed ({proc.returncode}): {err[-3000:]}")
    return proc.returncode


def _run_and_kill_after(root: Path, log: Path, resume: bool, delay: float, sig: int = signal.SIGKILL) -> int:
    proc = _start(root, log, resume)
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()[-2000:]
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        children = _children(proc.pid)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        _assert_dead(children)  # workers die with the optimizer (PR_SET_PDEATHSIG, or its shutdown)
    _, err = proc.communicate()
    # An uncaught KeyboardInterrupt ends Python by SIGINT itself (-2).
    if proc.returncode not in (0, -signal.SIGKILL, -signal.SIGINT):
        raise AssertionError(f"driver failed ({proc.returncode}): {err[-3000:]}")
    return proc.returncode


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _assert_dead(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.05)
    assert not alive, f"worker processes outlived the killed optimizer: {alive}"


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# ------------------------------------------------------------------ snapshots and comparisons

TIMING = {"started_at", "finished_at", "wall_s", "latency_s", "t", "time", "created_at", "elapsed_s"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _state(run: Path) -> dict:
    """Everything a run directory says, without timings (and without leftover temp files)."""
    from harnessopt.store import RunStore

    store = RunStore.open(run)
    rollouts = {p.relative_to(run).as_posix(): _strip(json.loads(p.read_text()))
                for p in sorted((run / "rollouts").glob("*/*/*.json"))}
    candidates = {m.id: (_strip(m.model_dump()), store.candidate_source(m.id)) for m in store.candidates()}
    ledger = [_strip(row.model_dump()) for row in store.ledger()]
    events = [_strip(e.model_dump()) for e in store.events()]
    notebook = (run / "notebook.md").read_text() if (run / "notebook.md").exists() else ""
    state = {"rollouts": rollouts, "candidates": candidates, "ledger": ledger, "events": events, "notebook": notebook,
             "transcripts": store.transcripts()}
    return json.loads(json.dumps(state).replace(str(run.parent), "<root>"))  # runs live in different folders


def _check_consistent_after_kill(run: Path) -> dict[str, bytes]:
    """The run directory right after a kill: readable, append-only files whole, and every
    ledger row / rollout belongs to a stored candidate. Returns the rollout files present."""
    from harnessopt.records import RolloutTrace
    from harnessopt.store import RunStore

    store = RunStore.open(run)  # also cuts a half-written last line off the ledger and events
    known = {m.id for m in store.candidates()}
    for row in store.ledger():
        assert row.kind == "meta" or row.candidate in known, f"ledger row for unknown candidate {row.candidate}"
        assert (row.score is None) == (row.kind == "meta")
    assert all(e.kind for e in store.events())  # every line is a whole, valid event
    files = {}
    for p in (run / "rollouts").glob("*/*/*.json"):
        data = p.read_bytes()
        trace = RolloutTrace.model_validate_json(data)  # whole: writes are atomic
        assert trace.candidate_id in known
        files[p.relative_to(run).as_posix()] = data
    # A kill between writing a temp file and renaming it leaves the temp file (named .<name>.*.tmp),
    # never a half-written file under its real name.
    stray = [p for p in run.rglob(".*") if p.is_file() and not p.name.endswith(".tmp")]
    assert stray == []
    return files


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _paid_keys(files: dict[str, bytes]) -> set[tuple[str, int]]:
    """(prompt, seed) of every model call inside rollouts already on disk."""
    keys = set()
    for data in files.values():
        for call in json.loads(data)["model_calls"]:
            keys.add((call["prompt"], call["params"]["seed"]))
    return keys


def _meta_cached(run: Path) -> set[str]:
    return {p.name for p in (run / "meta_cache").glob("*.json")} if (run / "meta_cache").exists() else set()


def _attempt(root: Path, log: Path, index: int, kill: tuple | None) -> tuple[int, str]:
    """One driver process: a new run, or a resume when the run directory is complete. `kill` is
    ("write", n, before|after), ("after", seconds), ("sigint", seconds) or None (run to the end)."""
    run = root / "run"
    resume = (run / "run.json").exists()
    if not resume and run.exists():  # killed before run.json was written: nothing to resume
        assert not list((run / "rollouts").glob("*/*/*.json")) if (run / "rollouts").exists() else True
        import shutil

        shutil.rmtree(run)
    kept = _check_consistent_after_kill(run) if resume else {}
    paid, cached_meta = _paid_keys(kept), _meta_cached(run)
    start = len(_calls(log))
    if kill is None:
        code, label = _run(root, log, resume), ""
    elif kill[0] == "write":
        code, label = _run(root, log, resume, kill_at_write=kill[1], when=kill[2]), f"write {kill[1]} {kill[2]}"
    elif kill[0] == "sigint":
        code, label = _run_and_kill_after(root, log, resume, kill[1], signal.SIGINT), f"sigint {kill[1]:.2f}s"
    else:
        code, label = _run_and_kill_after(root, log, resume, kill[1]), f"after {kill[1]:.2f}s"
    later = _calls(log)[start:]
    repaid = [c for c in later if (c["kind"] == "task" and (c["prompt"], c["seed"]) in paid)
              or (c["kind"] == "meta" and c["key"] in cached_meta)]
    assert repaid == [], f"trial {index} ({label}): completed work paid twice: {repaid[:3]}"
    if resume:
        after = {p.relative_to(run).as_posix(): p.read_bytes() for p in (run / "rollouts").glob("*/*/*.json")}
        changed = [name for name, data in kept.items() if after.get(name) != data]
        assert changed == [], f"trial {index} ({label}): completed rollouts changed or vanished: {changed[:3]}"
    return code, label


def _trial(reference: dict, base: Path, index: int, rng: random.Random, writes_total: int, duration: float) -> list[str]:
    root = base / f"trial-{index:02d}"
    root.mkdir()
    log = root / "calls.log"
    kills = []
    for _ in range(1 + (index % 3 == 0)):  # every third trial is killed twice (the resume too)
        if index % 2 == 0:  # at a durable write of the run directory
            kill = ("write", rng.randint(1, writes_total), rng.choice(["before", "after"]))
        elif index % 4 == 1:  # SIGKILL after a random delay
            kill = ("after", rng.uniform(0.05, 0.8 * duration))
        else:  # Ctrl-C after a random delay
            kill = ("sigint", rng.uniform(0.3, 0.8 * duration))
        code, label = _attempt(root, log, index, kill)
        if code == 0:
            break  # it finished before reaching the kill point
        kills.append(label)
    if not (root / "result.json").exists():
        code, _ = _attempt(root, log, index, None)
        assert code == 0
    result = json.loads((root / "result.json").read_text())
    assert _strip_result(result) == reference["result"], f"trial {index} ({kills}): result differs"
    assert _state(root / "run") == reference["state"], f"trial {index} ({kills}): run directory differs"
    # Across kills and resumes no more model calls than the uninterrupted run, except for work in
    # flight at a kill (paid, never completed, done again): at most 2 rollouts (concurrency 2)
    # and one meta call per kill.
    calls = _calls(log)
    tasks = sum(c["kind"] == "task" for c in calls)
    metas = sum(c["kind"] == "meta" for c in calls)
    assert tasks <= reference["task_calls"] + 2 * len(kills), (kills, tasks)
    assert metas <= reference["meta_calls"] + len(kills), (kills, metas)
    return kills


def _strip_result(result: dict) -> dict:
    out = _strip(result)
    out.pop("run_dir", None)
    out.pop("champion_path", None)
    out["history"] = [_strip(r) for r in out.get("history", [])]
    return out


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(tmp_path):
    # The uninterrupted reference, counting its durable writes and timing it.
    ref_root = tmp_path / "reference"
    ref_root.mkdir()
    started = time.monotonic()
    assert _run(ref_root, ref_root / "calls.log", False) == 0
    duration = time.monotonic() - started
    writes_total = int((ref_root / "writes").read_text())
    calls = _calls(ref_root / "calls.log")
    reference = {
        "result": _strip_result(json.loads((ref_root / "result.json").read_text())),
        "state": _state(ref_root / "run"),
        "task_calls": sum(c["kind"] == "task" for c in calls),
        "meta_calls": sum(c["kind"] == "meta" for c in calls),
    }
    assert reference["result"]["champion_id"] == "c0001" and reference["task_calls"] >= 20
    assert len(reference["state"]["ledger"]) >= 6

    rng = random.Random(20261122)
    plans = [(i, random.Random(rng.random())) for i in range(TRIALS)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        kills = list(pool.map(lambda p: _trial(reference, tmp_path, p[0], p[1], writes_total, duration), plans))
    flat = [k for ks in kills for k in ks]
    print(f"{len(flat)} kill points: {flat}")
    assert len(flat) >= 20, flat
    assert all(any(k.startswith(kind) for k in flat) for kind in ("write", "after", "sigint"))


if __name__ == "__main__":
    root_arg, log_arg, mode, kill_n, when_arg = sys.argv[1:6]
    drive(root_arg, log_arg, mode == "resume", int(kill_n) or None, when_arg)
