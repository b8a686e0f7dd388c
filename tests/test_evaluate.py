"""The evaluator with a stub model: traces, scores, ledger, cache, and failures that do not stop it."""

import asyncio
import json

import pytest

from harnessopt.benchmark import Benchmark
from harnessopt.errors import UsageError
from harnessopt.evaluation import evaluate_async, merge_params
from harnessopt.harness import harness_from_source
from harnessopt.records import ModelParams
from harnessopt.store import RunStore
from stubs import StubGateway

ECHO_LABEL = '''
async def run(task, ctx):
    shots = ctx.examples.similar(task.input, k=2)
    text = await ctx.complete(ctx.render("{% for s in shots %}{{ s.input }} => {{ s.target }}\\n{% endfor %}{{ task.input }} =>", shots=shots, task=task))
    return text
'''


def tiny_benchmark() -> Benchmark:
    train = [{"input": "turn on the lights", "target": "lights_on"}, {"input": "play jazz", "target": "play_music"}]
    search = [{"id": f"s{i}", "input": f"lights please {i}", "target": "lights_on"} for i in range(3)]
    test = [{"id": "t0", "input": "music now", "target": "play_music"},
            {"id": "t1", "input": "lights now", "target": "lights_on"}]
    return Benchmark.from_records("tiny", train=train, search=search, test=test, scorer="label")


def stub_reply(prompt: str) -> str:
    last = prompt.rsplit("\n", 1)[-1]
    return " lights_on" if "lights" in last else " nonsense"


def run(harness_src, tmp_path, gateway=None, **kw):
    gateway = gateway or StubGateway(stub_reply)
    result = asyncio.run(evaluate_async(harness_from_source(harness_src, "h.py"), tiny_benchmark(),
                                        out=tmp_path, gateway=gateway, **kw))
    return result, gateway


def test_scores_traces_and_ledger(tmp_path):
    result, gateway = run(ECHO_LABEL, tmp_path, split="test", trials=2)
    assert result.n_tasks == 2 and result.n_rollouts == 4
    assert result.score == pytest.approx(0.5)  # lights right, music wrong
    assert result.usage.calls == 4 == gateway.usage.calls
    store = RunStore.open(result.run_dir)
    traces = store.rollouts(result.candidate_id)
    assert len(traces) == 4
    t1 = next(t for t in traces if t.task_id == "t1")
    assert t1.score == 1.0 and t1.answer.strip() == "lights_on"
    assert t1.model_calls[0].prompt.endswith("lights now =>")
    assert t1.model_calls[0].response == " lights_on"
    assert {c.name for c in t1.tool_calls} == {"examples.similar"}
    assert "play_music" in json.dumps([t.explanation for t in traces]) or traces[0].explanation
    # seeds differ per trial, so trials are distinct rollouts
    assert {t.params.seed for t in traces} == {0, 1}
    ledger = store.ledger()
    assert [(r.kind, r.decision, r.n_tasks, r.trials, r.charged, r.reused) for r in ledger] == [("eval", "eval", 2, 2, 4, 0)]
    assert ledger[0].tokens == sum(t.usage.tokens for t in traces) > 0


def test_targets_never_reach_the_harness(tmp_path):
    src = "async def run(task, ctx):\n    return repr(task)\n"
    result, _ = run(src, tmp_path, split="test")
    store = RunStore.open(result.run_dir)
    for trace in store.rollouts(result.candidate_id):
        assert "play_music" not in trace.answer and "lights_on" not in trace.answer


def test_failures_become_failed_rollouts_and_the_evaluation_goes_on(tmp_path):
    src = '''
import asyncio
async def run(task, ctx):
    if task.id == "s0":
        raise ValueError("broken on purpose")
    if task.id == "s1":
        await asyncio.sleep(30)
    return 123
'''
    result, _ = run(src, tmp_path, split="search", timeout_s=0.5)
    assert result.n_rollouts == 3 and result.score == 0.0
    traces = {t.task_id: t for t in RunStore.open(result.run_dir).rollouts(result.candidate_id)}
    assert traces["s0"].status == "error" and "broken on purpose" in traces["s0"].error.traceback
    assert traces["s1"].status == "timeout"
    assert traces["s2"].status == "error" and traces["s2"].error.type == "TypeError"
    assert result.n_errors == 2 and result.n_timeouts == 1


def test_bad_arguments_make_no_run_directory(tmp_path):
    with pytest.raises(UsageError, match="trials"):
        run(ECHO_LABEL, tmp_path, trials=0)
    assert list(tmp_path.iterdir()) == []


def test_model_errors_are_recorded_and_raised_in_the_harness(tmp_path):
    from harnessopt.llm import PermanentLLMError

    class Failing(StubGateway):
        async def complete(self, model, prompt, params=None, **_):
            raise PermanentLLMError("model x not found; check the model string", model="x")

    src = '''
async def run(task, ctx):
    try:
        return await ctx.complete("hi")
    except Exception as exc:
        return "caught: " + str(exc)
'''
    result, _ = run(src, tmp_path, split="test", gateway=Failing())
    trace = RunStore.open(result.run_dir).rollouts(result.candidate_id)[0]
    assert trace.answer.startswith("caught: ") and "not found" in trace.answer
    assert trace.model_calls[0].error and "not found" in trace.model_calls[0].error


def test_merge_params_harness_wins_and_defaults_fill():
    merged = merge_params(ModelParams(temperature=0.0, max_tokens=256, seed=3), {"max_tokens": 5, "stop": ["\n"]})
    assert merged.max_tokens == 5 and merged.seed == 3 and merged.stop == ["\n"] and merged.temperature == 0.0


def test_public_functions_are_not_shadowed_by_submodules():
    import harnessopt
    import harnessopt.evaluation  # noqa: F401
    import harnessopt.optimizer  # noqa: F401

    assert callable(harnessopt.evaluate) and callable(harnessopt.optimize)
    assert harnessopt.evaluate.__module__ == "harnessopt.evaluation"
