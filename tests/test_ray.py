"""The Ray executor on a real Ray cluster on loopback (a `ray start --head` with 2 CPUs), stub models.

Shows: evaluation results identical to the local executor; Ray workers SIGKILLed mid-rollout with
no rollout lost and no model call paid twice; an optimize run with `executor="ray"` SIGKILLed and
resumed to the same result; a 2-cell comparison on Ray; keys kept out of a Ray runtime harnessopt
starts; and without Ray, a one-line install hint.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harnessopt.benchmark import Benchmark
from harnessopt.budget import Budget
from harnessopt.cli import main
from harnessopt.evaluation import evaluate_async
from harnessopt.executors.ray_host import BrokerRequest
from harnessopt.executors.replay import CallReplay
from harnessopt.harness import harness_from_source
from harnessopt.records import ModelCall
from harnessopt.runner import RolloutJob
from harnessopt.store import RunStore
from stubs import StubGateway

HERE = Path(__file__).resolve().parent
TWO_CALLS = '''
async def run(task, ctx):
    shots = ctx.examples.similar(task.input, k=2)
    first = await ctx.complete(ctx.render("{% for s in shots %}{{ s.input }} => {{ s.target }}\\n{% endfor %}first {{ task.input }} =>", shots=shots, task=task))
    ctx.log("first answer: " + first)
    second = await ctx.chat([{"role": "user", "content": "second " + task.input + " " + first}])
    return second.strip()
'''


def benchmark(n: int = 4) -> Benchmark:
    train = [{"input": f"turn on lamp {i}", "target": "lights_on"} for i in range(3)] + \
            [{"input": f"play song {i}", "target": "play_music"} for i in range(3)]
    test = [{"id": f"t{i}", "input": f"{'lamp' if i % 2 else 'song'} request {i}",
             "target": "lights_on" if i % 2 else "play_music"} for i in range(n)]
    search = [dict(t, id="s" + t["id"]) for t in test]
    return Benchmark.from_records("tiny", train=train, search=search, test=test, scorer="label")


def label_reply(text: str) -> str:
    """Deterministic stub: a label from the request's words (second calls answer from the first)."""
    last = text.split("\n")[-1]
    return " lights_on" if "lamp" in last or "request 2" in last else " play_music"  # wrong for t2


# --------------------------------------------------------------------------- the cluster


@pytest.fixture(scope="module")
def cluster():
    from ray_cluster import LoopbackCluster

    lc = LoopbackCluster()
    saved = {k: os.environ.get(k) for k in lc.env}
    # Drivers (this process, and the ones it starts) join on loopback with the cluster's token;
    # Ray reads some of these when it is imported, so they are set first.
    os.environ.update(lc.env)
    try:
        pytest.importorskip("ray")
        lc.start_head(cpus=2, client=_has_ray_client())
        yield lc
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        lc.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _has_ray_client() -> bool:
    import importlib.util

    return importlib.util.find_spec("grpc") is not None  # what ray[client] adds


def ray_executor(cluster, concurrency: int = 2, **kw):
    from harnessopt.executors.ray_executor import RayExecutor

    return RayExecutor(concurrency, address=cluster.address, kill_grace_s=0.5, **kw)


# --------------------------------------------------------------------------- results


def rollout_view(run_dir: str) -> dict:
    """What a rollout produced, without timings, ids or paths."""
    store = RunStore.open(run_dir)
    out = {}
    for trace in store.rollouts(store.candidates()[0].id):
        out[(trace.task_id, trace.trial)] = {
            "answer": trace.answer, "score": trace.score, "status": trace.status, "usage": trace.usage.tokens,
            "calls": [(c.kind, c.prompt, c.messages, c.response, c.params.seed) for c in trace.model_calls],
            "tools": [c.name for c in trace.tool_calls], "logs": [line.msg for line in trace.logs],
        }
    return out


def test_eval_on_ray_is_identical_to_local(cluster, tmp_path):
    harness = harness_from_source(TWO_CALLS, "two_calls.py")

    async def both():
        local = await evaluate_async(harness, benchmark(), out=tmp_path / "local", gateway=StubGateway(label_reply),
                                     trials=2, executor="local")
        executor = ray_executor(cluster)
        try:
            remote = await evaluate_async(harness, benchmark(), out=tmp_path / "ray", gateway=StubGateway(label_reply),
                                          trials=2, executor=executor)
            hosts = await executor.host_infos()
        finally:
            await executor.close()
        return local, remote, hosts

    local, remote, hosts = asyncio.run(both())
    assert remote.n_rollouts == local.n_rollouts == 8 and remote.n_errors == 0
    assert (remote.score, remote.usage.tokens, remote.usage.calls) == (local.score, local.usage.tokens, local.usage.calls)
    assert 0 < local.score < 1  # the stub answers some tasks right and some wrong
    assert rollout_view(remote.run_dir) == rollout_view(local.run_dir)
    assert {h.pid for h in hosts}.isdisjoint({os.getpid()}) and len(hosts) == 2  # they ran in Ray's processes


def test_a_ray_client_address_works_like_a_cluster_address(cluster, tmp_path):
    if cluster.client_address is None:
        pytest.skip("ray[client] is not installed")
    from harnessopt.executors.ray_executor import RayExecutor

    harness = harness_from_source(TWO_CALLS, "two_calls.py")

    async def go():
        executor = RayExecutor(1, address=cluster.client_address)
        try:
            return await evaluate_async(harness, benchmark(), out=tmp_path, gateway=StubGateway(label_reply),
                                        executor=executor)
        finally:
            await executor.close()

    result = asyncio.run(go())
    assert result.n_errors == 0 and [t.scores for t in result.tasks] == [[1.0], [1.0], [0.0], [1.0]]


class KillingGateway(StubGateway):
    """A slow model that, when the first "second" call arrives, SIGKILLs the given Ray worker
    processes and only then answers (so that call is in flight while its worker dies)."""

    def __init__(self, victims: list[int]):
        super().__init__(label_reply, delay_s=0.3)
        self.victims = victims
        self.killed = False

    async def _answer(self, model, text):
        if text.startswith("second") and not self.killed:
            self.killed = True
            for pid in self.victims:
                os.kill(pid, signal.SIGKILL)
        return await super()._answer(model, text)


def test_killed_ray_workers_lose_no_rollout_and_pay_no_call_twice(cluster, tmp_path, capfd):
    harness = harness_from_source(TWO_CALLS, "two_calls.py")

    async def go():
        executor = ray_executor(cluster)
        try:
            victims = [h.pid for h in await executor.warm()]
            gateway = KillingGateway(victims)
            result = await evaluate_async(harness, benchmark(), out=tmp_path, gateway=gateway, executor=executor)
            return result, gateway, executor, victims
        finally:
            await executor.close()

    result, gateway, executor, victims = asyncio.run(go())
    assert gateway.killed
    assert result.n_rollouts == 4 and result.n_errors == 0  # nothing lost
    assert [t.scores for t in result.tasks] == [[1.0], [1.0], [0.0], [1.0]]  # as without a kill (t2: a wrong stub)
    assert executor.hosts_lost >= 1  # the killed workers were noticed and replaced
    # Each rollout makes two model calls, and the model answered exactly that many: the calls the
    # killed attempts were served (or were being served) were replayed to their restarts, not paid again.
    assert gateway.usage.calls == 2 * result.n_rollouts == result.usage.calls
    assert executor.calls_replayed >= 2
    notes = [m for trace in RunStore.open(result.run_dir).rollouts(result.candidate_id) for m in
             (line.msg for line in trace.logs) if "lost attempt" in m]
    assert notes and "not paid again" in notes[0]
    for pid in victims:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    time.sleep(1)  # Ray's notice of the dead workers arrives on its own thread
    out, err = capfd.readouterr()
    assert "(raylet)" not in out  # Ray's notices go to stderr: stdout is for results (--json)


def test_a_worker_that_cannot_be_placed_is_one_line(cluster, tmp_path):
    from harnessopt.errors import UsageError

    async def go():
        executor = ray_executor(cluster, concurrency=1, worker_cpus=64, start_timeout_s=3)
        try:
            await evaluate_async(harness_from_source(TWO_CALLS, "h.py"), benchmark(1), out=tmp_path,
                                 gateway=StubGateway(label_reply), executor=executor)
        finally:
            await executor.close()

    with pytest.raises(UsageError, match=r"each needs 64 CPU and the cluster has 2 free; lower --ray-worker-cpus"):
        asyncio.run(go())


# --------------------------------------------------------------------------- optimize: SIGKILL and resume


def _driver(cluster, root: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "ray_optimize_driver.py"), str(root), str(root / "calls.log"),
                             mode, cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=root, env={**os.environ, "PYTHONPATH": str(HERE.parent / "src")})


def _finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def _calls(root: Path) -> list[dict]:
    path = root / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_optimize_on_ray_resumes_after_sigkill(cluster, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    killed.mkdir()
    _finish(_driver(cluster, reference, "new"))
    expected = json.loads((reference / "result.json").read_text())

    proc = _driver(cluster, killed, "new")
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()[-2000:]
    deadline = time.monotonic() + 120
    while sum(c["kind"] == "task" for c in _calls(killed)) < 12:  # mid-way through the seed's evaluations
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rollouts_dir = killed / "run" / "rollouts"
    at_kill = {p: p.read_bytes() for p in rollouts_dir.rglob("*.json")}
    calls_at_kill = len(_calls(killed))

    _finish(_driver(cluster, killed, "resume"))
    result = json.loads((killed / "result.json").read_text())
    same = ("champion_id", "seed_search", "champion_search", "seed_test", "champion_test", "promotions", "candidates")
    assert {k: result[k] for k in same} == {k: expected[k] for k in same}
    assert result["champion_id"] == "c0001"  # the run went all the way through after the resume
    assert all(p.read_bytes() == data for p, data in at_kill.items())  # finished rollouts kept, unchanged
    # A rollout on disk at the kill is never run again: the resumed session asks the model only
    # for what was missing, at most the in-flight rollouts (2 at once) twice over.
    resumed_task_calls = [c for c in _calls(killed)[calls_at_kill:] if c["kind"] == "task"]
    total_reference = sum(c["kind"] == "task" for c in _calls(reference))
    assert calls_at_kill and total_reference <= len([c for c in _calls(killed) if c["kind"] == "task"]) \
        <= total_reference + 2
    assert len(resumed_task_calls) < total_reference
    _assert_cluster_idle(cluster)


def _assert_cluster_idle(cluster) -> None:
    """The killed driver's Ray workers were released: every CPU of the cluster is free again."""
    import ray

    ray.init(address=cluster.address, log_to_driver=False)
    try:
        deadline = time.monotonic() + 60
        while ray.available_resources().get("CPU", 0) < 2:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.2)
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------- compare


PPID_SEED = '''
import os

async def run(task, ctx):
    ctx.log(f"worker parent {os.getppid()}")
    return (await ctx.complete("echo " + task.input)).strip()
'''


def test_compare_runs_two_cells_on_ray(cluster, tmp_path):
    from harnessopt.comparison import compare, make_grid
    from harnessopt.report import write_report
    from scripted import ScriptedProposer

    (tmp_path / "seed.py").write_text(PPID_SEED)
    bench = Benchmark.from_records("arith", train=[{"input": "1", "target": "2"}],
                                   search=[{"id": f"s{n}", "input": str(n), "target": str(2 * n)} for n in range(4)],
                                   test=[{"id": f"t{n}", "input": str(n), "target": str(2 * n)} for n in range(3)],
                                   scorer="exact")
    spec = make_grid(harness=str(tmp_path / "seed.py"), benchmark="arith", out=str(tmp_path / "exp"),
                     feedback=["traces", "scores"], seeds=[0], parallel=2, concurrency=1,
                     budget=Budget(iterations=1, rollouts=100), executor="ray", ray_address=cluster.address)
    gateways = {}

    def gateway(entry, config):
        gateways[entry.id] = StubGateway(lambda text: " " + text.split()[-1])
        return gateways[entry.id]

    result = compare(spec, benchmark=bench, gateway_factory=gateway,
                     proposer_factory=lambda entry, config: ScriptedProposer([[{"action": "finish", "note": "ok"}]]))
    assert [r.status for r in result.runs] == ["finished", "finished"]
    parents = set()
    for run in result.runs:
        store = RunStore.open(run.run_dir)  # an ordinary run directory
        traces = store.rollouts("c0000")
        assert traces and all(t.status == "ok" for t in traces)
        assert sum(t.usage.calls for t in traces) == gateways[run.id].usage.calls  # every call went through the driver
        parents |= {int(line.msg.split()[-1]) for t in traces for line in t.logs if line.msg.startswith("worker parent")}
    assert parents and os.getpid() not in parents  # workers ran under Ray's processes, not this one
    report = write_report(result.experiment_dir, html=False, plots=False)["markdown"].read_text()
    assert all(run.arm in report for run in result.runs)  # report reads both cells
    assert main(["show", result.runs[0].run_dir]) == 0


# --------------------------------------------------------------------------- keys, install hint, replay


KEY_CHECK = '''
import asyncio, os, sys
os.environ["HARNESSOPT_TEST_API_KEY"] = "sk-test-000000000000"
import ray
from harnessopt.executors.ray_executor import RayExecutor

@ray.remote(num_cpus=0)
def has_key():
    return "HARNESSOPT_TEST_API_KEY" in os.environ

async def main():
    executor = RayExecutor(1, local_cpus=1)
    await executor.warm()
    print("worker-has-key", ray.get(has_key.remote()))
    print("driver-has-key", "HARNESSOPT_TEST_API_KEY" in os.environ)
    await executor.close()
    print("shut-down", not ray.is_initialized())

asyncio.run(main())
'''


def test_a_ray_runtime_harnessopt_starts_holds_no_keys(tmp_path):
    pytest.importorskip("ray")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PYTHONPATH=str(HERE.parent / "src"), RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    proc = subprocess.run([sys.executable, "-c", KEY_CHECK], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split("\n")
    assert "worker-has-key False" in lines and "driver-has-key True" in lines and "shut-down True" in lines


def test_executor_ray_without_ray_is_a_one_line_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as when it is not installed
    code = main(["eval", "--harness", str(HERE.parent / "harnesses" / "home_intents_fewshot.py"),
                 "--benchmark", "home_intents", "--limit", "2", "--executor", "ray", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "pip install 'harnessopt[ray]'" in err
    assert not any(tmp_path.iterdir())  # no run directory


def test_options_name_a_bad_ray_address(capsys):
    harness = str(HERE.parent / "harnesses" / "home_intents_fewshot.py")
    assert main(["eval", "--harness", harness, "--benchmark", "home_intents", "--executor", "ray",
                 "--ray-address", "somewhere"]) == 2
    assert "--ray-address: expected auto, ray://HOST:PORT or HOST:PORT, got 'somewhere'" in capsys.readouterr().err
    assert main(["optimize", "--harness", harness, "--benchmark", "home_intents", "--ray-address", "auto"]) == 2
    assert "--ray-address is used only with --executor ray" in capsys.readouterr().err


def test_nothing_at_the_ray_address_is_one_line_before_any_run_directory(tmp_path, capsys):
    pytest.importorskip("ray")
    from ray_cluster import free_port

    address = f"127.0.0.1:{free_port()}"  # a port nothing listens on
    started = time.monotonic()
    assert main(["eval", "--harness", str(HERE.parent / "harnesses" / "home_intents_fewshot.py"), "--benchmark",
                 "home_intents", "--executor", "ray", "--ray-address", address, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--ray-address {address}: nothing answers there" in err
    assert time.monotonic() - started < 30 and not any(tmp_path.iterdir())


class CountingBroker:
    def __init__(self):
        self.calls: list[str] = []

    async def model_call(self, job, kind, args):
        self.calls.append(args["prompt"])
        await asyncio.sleep(0.01)
        return ModelCall(kind="complete", model="m", prompt=args["prompt"], response=f"#{len(self.calls)}")

    async def tool_call(self, job, name, args):
        raise AssertionError("no tools here")


async def test_replay_serves_a_lost_attempts_calls_in_order_and_pays_only_new_ones():
    broker, replay = CountingBroker(), CallReplay()
    job = RolloutJob(job_id="j", candidate_id="c", harness_source="", harness_path="h.py", harness_hash="h",
                     task={"id": "t", "input": "x"}, trial=0, model="m", examples_key="k")

    def ask(n: int, prompt: str) -> BrokerRequest:
        return BrokerRequest(id=n, op="model", name="complete", args={"prompt": prompt})

    replay.new_attempt()
    first = [(await replay.serve(ask(i, p), job, broker)).response for i, p in enumerate(["a", "a", "b"])]
    in_flight = asyncio.ensure_future(replay.serve(ask(3, "c"), job, broker))
    await asyncio.sleep(0)
    in_flight.cancel()  # the attempt is lost while "c" is being answered: the call itself goes on
    replay.new_attempt()
    second = [(await replay.serve(ask(i, p), job, broker)).response for i, p in enumerate(["a", "b", "a", "c", "d"])]
    assert first == ["#1", "#2", "#3"]
    assert second == ["#1", "#3", "#2", "#4", "#5"]  # same answers for the same calls, in their order
    assert broker.calls == ["a", "a", "b", "c", "d"]  # nothing asked twice
    assert replay.replayed == 4
