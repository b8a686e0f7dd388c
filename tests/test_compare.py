"""Experiments: grid specs, concurrent arms, failure isolation, resume (stub models, no real LLM)."""

import asyncio
import json
import time

import pytest

from harnessopt.benchmark import Benchmark
from harnessopt.budget import Budget
from harnessopt.cli import main
from harnessopt.comparison import (
    COMPARABLE_FIELDS,
    EXPERIMENT_FORMAT,
    GridSpec,
    compare,
    load_grid,
    make_grid,
    parse_model_spec,
    parse_models_arg,
    same_setup,
)
from harnessopt.errors import UsageError
from harnessopt.optimizer import OptimizeConfig
from harnessopt.records import LogLine, RolloutError
from harnessopt.runner import RolloutOutcome
from harnessopt.store import RunStore
from scripted import Crash, ScriptedProposer
from stubs import StubGateway

N_SEARCH = 10
SEED = 'async def run(task, ctx):\n    return (await ctx.complete("echo " + task.input)).strip()\n'
GOOD = 'async def run(task, ctx):\n    return (await ctx.complete("double " + task.input)).strip()\n'


class InlineExecutor:
    """Runs harness code in this process (unit tests only: no sandbox, no worker start-up cost).

    Implements the runner's Executor seam with a minimal ctx: complete(), chat(), log()."""

    async def run(self, job, broker) -> RolloutOutcome:
        out = RolloutOutcome(started_at=time.time())

        class Ctx:
            model = job.model

            async def _call(self, kind, args):
                call = await broker.model_call(job, kind, args)
                out.model_calls.append(call)
                out.usage.calls += 1
                out.usage.prompt_tokens += call.prompt_tokens
                out.usage.completion_tokens += call.completion_tokens
                if call.error:
                    raise RuntimeError(call.error)
                return call.response

            async def complete(self, prompt, **params):
                return await self._call("complete", {"prompt": str(prompt), "params": params})

            async def chat(self, messages, **params):
                return await self._call("chat", {"messages": messages, "params": params})

            def log(self, msg):
                out.logs.append(LogLine(t=time.time(), msg=str(msg)))

        namespace: dict = {}
        try:
            exec(compile(job.harness_source, job.harness_path, "exec"), namespace)
            out.answer = str(await namespace["run"](job.task, Ctx()))
        except Exception as exc:  # noqa: BLE001 - reported like the real worker does
            out.status = "error"
            out.error = RolloutError(type=type(exc).__name__, message=str(exc))
        out.finished_at = time.time()
        out.wall_s = out.finished_at - out.started_at
        return out

    async def close(self) -> None:
        pass


def inline(entry, config):
    return InlineExecutor()


def double_model(prompt: str) -> str:
    verb, _, n = prompt.partition(" ")
    return f" {int(n) * 2}" if verb == "double" else f" {n}"


def arith_benchmark() -> Benchmark:
    def item(n, split):
        return {"id": f"{split}-{n}", "input": str(n), "target": str(2 * n)}
    return Benchmark.from_records(
        "arith", train=[item(n, "train") for n in range(100, 110)],
        search=[item(n, "search") for n in range(1, N_SEARCH + 1)], test=[item(n, "test") for n in range(50, 60)],
        scorer="exact",
    )


def grid(tmp_path, **kw) -> GridSpec:
    harness = tmp_path / "seed.py"
    harness.write_text(SEED)
    fields = dict(harness=str(harness), benchmark="arith", feedback="traces,scores", seeds=2,
                  models={"A": "local/gemma-3-270m"}, budget=Budget(iterations=1, rollouts=100), out=str(tmp_path / "exp"),
                  parallel=4)
    fields.update(kw)
    return make_grid(**fields)


def traces_win(entry, config):
    """The traces arm finds the fix; the scores arm proposes nothing."""
    if config.feedback == "traces":
        return ScriptedProposer([[{"action": "write_harness", "code": GOOD, "hypothesis": "double"},
                                  {"action": "spot_check", "candidate": "c0001", "task_ids": ["search-1", "search-2"]},
                                  {"action": "full_eval", "candidate": "c0001"}]])
    return ScriptedProposer([[]])


def stub_gateway(entry, config):
    return StubGateway(double_model)


# --------------------------------------------------------------------------- grid specs


def test_model_spec_suffix_means_same_weights_other_temperature():
    m = parse_model_spec("local/gemma-3-270m@t0.9", "B")
    assert (m.model, m.temperature, m.alias) == ("local/gemma-3-270m", 0.9, "B")
    assert "same weights" in m.label and "not another model family" in m.label
    plain = parse_model_spec("vertex_ai/claude-3-5-sonnet@20240620")
    assert plain.model == "vertex_ai/claude-3-5-sonnet@20240620" and plain.temperature is None
    with pytest.raises(UsageError):
        parse_model_spec("  ")


def test_grid_arms_runs_and_per_side_temperatures(tmp_path):
    spec = grid(tmp_path, models={"A": "local/gemma-3-270m", "B": "local/gemma-3-270m@t0.9"},
                pairs="A:A,A:B,B:A,B:B", feedback="traces,summary,scores", seeds=3)
    arms = spec.arms()
    assert len(arms) == 12 and len(spec.runs()) == 36
    assert [a.name for a in arms[:4]] == ["traces-A-A", "traces-A-B", "traces-B-A", "traces-B-B"]
    assert [a.same_model for a in arms[:4]] == [True, False, False, True]
    assert spec.seeds == [0, 1, 2]
    ab = spec.run_config(arms[1], 2, tmp_path)  # meta A, task B
    assert (ab.meta_model, ab.meta_temperature, ab.task_model, ab.temperature) == (
        "local/gemma-3-270m", 0.7, "local/gemma-3-270m", 0.9)
    defaults = OptimizeConfig.model_fields
    assert (ab.meta_max_tokens, ab.max_tokens, ab.concurrency) == (  # unset: the optimizer's own defaults
        defaults["meta_max_tokens"].default, defaults["max_tokens"].default, defaults["concurrency"].default)
    ba = spec.run_config(arms[2], 0, tmp_path)  # meta B, task A
    assert (ba.meta_temperature, ba.temperature, ba.seed, ba.feedback) == (0.9, 0.0, 0, "traces")


def test_pairs_accept_model_strings_with_colons_when_aliased(tmp_path):
    spec = grid(tmp_path, models={"A": "ollama/llama3:8b", "B": "openai/gpt-4o-mini"}, pairs="A:B,B:A")
    assert [(a.meta, a.task) for a in spec.arms()][:2] == [("A", "B"), ("B", "A")]
    assert spec.run_config(spec.arms()[0], 0, tmp_path).meta_model == "ollama/llama3:8b"
    direct = grid(tmp_path, models={}, pairs="openai/gpt-4o-mini:anthropic/claude-3-5-haiku-latest", feedback="traces")
    assert direct.run_config(direct.arms()[0], 0, tmp_path).task_model == "anthropic/claude-3-5-haiku-latest"
    with pytest.raises(UsageError, match="not META:TASK"):
        grid(tmp_path, models={}, pairs="ollama/llama3:8b:ollama/llama3:8b")
    with pytest.raises(UsageError, match="feedback"):
        grid(tmp_path, feedback="traces,everything")
    assert parse_models_arg("A=local/gemma-3-270m, B=local/gemma-3-270m@t0.9") == {
        "A": "local/gemma-3-270m", "B": "local/gemma-3-270m@t0.9"}
    with pytest.raises(UsageError, match="ALIAS=MODEL"):
        parse_models_arg("local/gemma-3-270m")


def test_toml_and_yaml_grids_load_the_same_spec(tmp_path):
    (tmp_path / "seed.py").write_text(SEED)
    (tmp_path / "grid.toml").write_text(
        'name = "fb"\nharness = "seed.py"\nbenchmark = "home_intents"\nfeedback = ["traces", "scores"]\n'
        'pairs = ["A:A", "A:B"]\nseeds = 3\n\n[models]\nA = "local/gemma-3-270m"\nB = "local/gemma-3-270m@t0.9"\n\n'
        '[budget]\niterations = 2\nrollouts = 120\nmeta_steps_per_iteration = 4\n')
    (tmp_path / "grid.yaml").write_text(
        'name: fb\nharness: seed.py\nbenchmark: home_intents\nfeedback: [traces, scores]\npairs: ["A:A", "A:B"]\n'
        'seeds: 3\nmodels:\n  A: local/gemma-3-270m\n  B: local/gemma-3-270m@t0.9\n'
        'budget:\n  iterations: 2\n  rollouts: 120\n  meta_steps_per_iteration: 4\n')
    t, y = load_grid(tmp_path / "grid.toml"), load_grid(tmp_path / "grid.yaml")
    assert t == y
    assert t.harness == str((tmp_path / "seed.py").resolve())  # relative to the grid file
    assert t.budget.rollouts == 120 and len(t.runs()) == 12
    (tmp_path / "bad.toml").write_text("budget = [1,\n")
    with pytest.raises(UsageError, match="cannot parse"):
        load_grid(tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text('harness = "seed.py"\nbenchmark = "x"\nseedz = 3\n')
    with pytest.raises(UsageError, match="seedz"):
        load_grid(tmp_path / "typo.toml")


# --------------------------------------------------------------------------- running a grid


def test_grid_runs_every_arm_and_seed_on_the_same_splits(tmp_path):
    result = compare(grid(tmp_path), benchmark=arith_benchmark(), executor_factory=inline, gateway_factory=stub_gateway,
                     proposer_factory=traces_win)
    assert result.finished and [r.id for r in result.runs] == [
        "traces-A-A-seed0", "scores-A-A-seed0", "traces-A-A-seed1", "scores-A-A-seed1"]  # seed by seed
    by = {r.id: r.result for r in result.runs}
    assert by["traces-A-A-seed0"].champion_test.score == 1.0 and by["scores-A-A-seed1"].champion_test.score == 0.0
    exp = json.loads((tmp_path / "exp" / result.experiment_dir.split("/")[-1] / "experiment.json").read_text())
    assert [r["status"] for r in exp["runs"]] == ["finished"] * 4
    fingerprints = set()
    for r in result.runs:
        store = RunStore.open(r.run_dir)
        fingerprints.add(store.info()["benchmark_fingerprint"])
        assert store.info()["config"]["seed"] == r.seed
        assert {t.task_id for t in store.rollouts("c0000") if t.split == "test"} == {f"test-{n}" for n in range(50, 60)}
    assert len(fingerprints) == 1


def test_runs_go_concurrently_up_to_the_limit(tmp_path):
    active, peak = [0], [0]

    class Slow:
        name = "slow"

        async def run_iteration(self, wb):
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            await asyncio.sleep(0.3)
            active[0] -= 1

    spec = grid(tmp_path, parallel=2)
    compare(spec, benchmark=arith_benchmark(), executor_factory=inline, gateway_factory=stub_gateway, proposer_factory=lambda e, c: Slow())
    assert peak[0] == 2


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path):
    class Broken:
        name = "broken"

        async def run_iteration(self, wb):
            raise RuntimeError("meta model exploded")

    def proposer(entry, config):
        return Broken() if entry.id == "scores-A-A-seed0" else ScriptedProposer([[]])

    result = compare(grid(tmp_path), benchmark=arith_benchmark(), executor_factory=inline, gateway_factory=stub_gateway,
                     proposer_factory=proposer)
    status = {r.id: (r.status, r.error) for r in result.runs}
    assert status["scores-A-A-seed0"] == ("failed", "RuntimeError: meta model exploded")
    assert [s for s, _ in status.values()].count("finished") == 3 and not result.finished
    exp = json.loads((next((tmp_path / "exp").iterdir()) / "experiment.json").read_text())
    assert {r["id"]: r["status"] for r in exp["runs"]}["scores-A-A-seed0"] == "failed"


def test_kill_and_resume_skips_finished_runs_and_pays_nothing_twice(tmp_path):
    spec = grid(tmp_path, parallel=1)
    script = [[{"action": "write_harness", "code": GOOD, "hypothesis": "double"},
               {"action": "spot_check", "candidate": "c0001", "task_ids": ["search-1", "search-2"]},
               {"action": "full_eval", "candidate": "c0001"}]]
    gateways: dict[str, StubGateway] = {}
    made: list[str] = []

    def gateway(entry, config):
        return gateways.setdefault(entry.id, StubGateway(double_model))

    def killer(entry, config):
        made.append(entry.id)
        return ScriptedProposer(script, crash_at=2 if entry.id == "traces-A-A-seed1" else None)

    with pytest.raises(Crash):
        compare(spec, benchmark=arith_benchmark(), executor_factory=inline, gateway_factory=gateway, proposer_factory=killer,
                experiment_id="exp1")
    exp_dir = tmp_path / "exp" / "exp1"
    statuses = {r["id"]: r["status"] for r in json.loads((exp_dir / "experiment.json").read_text())["runs"]}
    assert statuses == {"traces-A-A-seed0": "finished", "scores-A-A-seed0": "finished",
                        "traces-A-A-seed1": "running", "scores-A-A-seed1": "pending"}
    finished_ledger = (exp_dir / "runs" / "traces-A-A-seed0" / "ledger.tsv").read_text()
    calls_before = gateways["traces-A-A-seed1"].usage.calls

    made.clear()
    result = compare(resume=exp_dir, benchmark=arith_benchmark(), executor_factory=inline, gateway_factory=gateway,
                     proposer_factory=lambda e, c: (made.append(e.id), ScriptedProposer(script))[1])
    assert result.finished
    assert made == ["traces-A-A-seed1", "scores-A-A-seed1"]  # the finished runs were skipped
    assert (exp_dir / "runs" / "traces-A-A-seed0" / "ledger.tsv").read_text() == finished_ledger
    # the killed run paid only for what it had not paid before: same total as an uninterrupted run
    assert gateways["traces-A-A-seed1"].usage.calls == gateways["traces-A-A-seed0"].usage.calls
    assert gateways["traces-A-A-seed1"].usage.calls > calls_before
    by = {r.id: r.result for r in result.runs}
    assert by["traces-A-A-seed1"].champion_id == by["traces-A-A-seed0"].champion_id == "c0001"


def test_resume_refuses_other_data_and_bad_inputs_make_no_directory(tmp_path):
    spec = grid(tmp_path, seeds=1, feedback="traces")
    compare(spec, benchmark=arith_benchmark(), executor_factory=inline, gateway_factory=stub_gateway,
            proposer_factory=lambda e, c: ScriptedProposer([[]]), experiment_id="e")
    other = Benchmark.from_records("arith", train=[{"id": "a", "input": "1", "target": "2"}],
                                   search=[{"id": "s", "input": "1", "target": "2"}],
                                   test=[{"id": "t", "input": "1", "target": "2"}], scorer="exact")
    with pytest.raises(UsageError, match="benchmark differs"):
        compare(resume=tmp_path / "exp" / "e", benchmark=other, executor_factory=inline)
    missing = grid(tmp_path, out=str(tmp_path / "never"))
    missing = missing.model_copy(update={"harness": str(tmp_path / "nope.py")})
    with pytest.raises(Exception, match="nope.py"):
        compare(missing, benchmark=arith_benchmark())
    assert not (tmp_path / "never").exists()


# --------------------------------------------------------------------------- CLI


def test_cli_compare_rejects_bad_grids_with_a_one_line_error(tmp_path, capsys):
    (tmp_path / "seed.py").write_text(SEED)
    code = main(["compare", "--harness", str(tmp_path / "seed.py"), "--benchmark", "home_intents",
                 "--pairs", "A:Z:Q:R", "--models", "A=local/gemma-3-270m", "--out", str(tmp_path / "o")])
    assert code == 2 and "not META:TASK" in capsys.readouterr().err
    assert main(["compare", "--benchmark", "home_intents"]) == 2
    assert "needs --harness" in capsys.readouterr().err
    assert main(["compare", "--harness", "x.py", "--benchmark", "b", "--seeds", "two"]) == 2
    assert main(["compare", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not an experiment directory" in capsys.readouterr().err
    # an unknown model is found before the experiment directory is made (no runs that all fail)
    assert main(["compare", "--harness", str(tmp_path / "seed.py"), "--benchmark", "home_intents",
                 "--models", "A=nosuch/model", "--pairs", "A:A", "--out", str(tmp_path / "o")]) == 2
    assert "nosuch/model: unknown model string" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_random_search_is_a_meta_side_arm(tmp_path):
    spec = grid(tmp_path, models={"A": "local/gemma-3-270m", "R": "random"}, pairs="A:A,R:A", feedback="traces", seeds=2)
    arms = spec.arms()
    assert [a.name for a in arms] == ["traces-A-A", "traces-R-A"] and not arms[1].same_model
    config = spec.run_config(arms[1], 1, tmp_path)
    assert (config.meta_model, config.task_model, config.seed) == ("random", "local/gemma-3-270m", 1)
    assert "no model" in spec.model_specs()["R"].label
    with pytest.raises(ValueError, match="meta-side proposer"):
        grid(tmp_path, models={"A": "local/gemma-3-270m"}, pairs="A:random")


def test_experiments_merged_for_a_comparison_must_share_their_setup(tmp_path):
    def experiment(name, spec):
        folder = tmp_path / name
        folder.mkdir()
        data = {"format": EXPERIMENT_FORMAT, "spec": spec.model_dump(mode="json")}
        (folder / "experiment.json").write_text(json.dumps(data))
        return folder

    setup = lambda spec: {f: getattr(spec, f) for f in COMPARABLE_FIELDS}  # noqa: E731
    a = experiment("a", grid(tmp_path, seeds="0,1"))
    # other seeds and arms are fine: only the setup must match
    b = experiment("b", grid(tmp_path, seeds="2,3", models={"A": "local/gemma-3-270m", "B": "random"}, pairs="B:A"))
    assert [s.seeds for s in same_setup([a, b], setup)] == [[0, 1], [2, 3]]
    c = experiment("c", grid(tmp_path, test_limit=30))
    with pytest.raises(UsageError, match=r"c: its test_limit \(30\) differs from .*a's \(None\)"):
        same_setup([a, b, c], setup)
    with pytest.raises(UsageError, match="not an experiment directory"):
        same_setup([a, tmp_path], setup)
