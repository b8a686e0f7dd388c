"""Reports: run and experiment data, meta-agent behaviour, report.md, PNG plots, report.html (stub models)."""

import asyncio
import json
import re

import pytest

from harnessopt.budget import Budget
from harnessopt.cli import main
from harnessopt.comparison import compare, make_grid
from harnessopt.evaluation import evaluate_async
from harnessopt.meta.llm_proposer import LLMProposer
from harnessopt.meta.protocol import ProtocolSettings
from harnessopt.optimizer import OptimizeConfig, optimize_async
from harnessopt.report import write_report
from harnessopt.report.data import load_run
from harnessopt.report.experiment_data import load_experiment
from scripted import ScriptedMetaGateway, ScriptedProposer
from stubs import StubGateway
from test_compare import GOOD, InlineExecutor, arith_benchmark, double_model

MARKER = "ZEBRA-TRACE-MARKER"
HOSTILE = "</script><img src=x onerror=alert(1)>"
SEED = ('async def run(task, ctx):\n'
        f'    ctx.log("{MARKER} seen " + task.input)\n'
        f'    if task.input == "7":\n        ctx.log("{HOSTILE}")\n'
        '    return (await ctx.complete("echo " + task.input)).strip()\n')
ALMOST = ('async def run(task, ctx):\n    verb = "echo " if task.input == "3" else "double "\n'
          '    return (await ctx.complete(verb + task.input)).strip()\n')
ONLY3 = ('async def run(task, ctx):\n    verb = "double " if task.input == "3" else "echo "\n'
         '    return (await ctx.complete(verb + task.input)).strip()\n')


def _write(code: str, hypothesis: str, **header) -> str:
    return json.dumps({"action": "write", "predicted": 0.5, "hypothesis": hypothesis, **header}) + "\n```python\n" + code + "```"


def meta_script():
    """Iteration 1: propose ALMOST and ONLY3, promote ALMOST (0.9). Iteration 2: propose GOOD (on
    ALMOST) and a copy of it; screen ONLY3 on search-3 (looks better, full says worse: disagree);
    screen GOOD on search-1,3 (better; full 1.0 > 0.9 says better: agree, too small to promote);
    one more screen that no full evaluation follows."""
    return [
        _write(ALMOST, "double instead of echo, except for 3"),
        _write(ONLY3, "double only 3"),
        {"action": "full_eval", "candidate": "c0001", "rationale": "clear fix: check it everywhere"},
        _write(GOOD, "always double", parent="c0001"),
        _write(GOOD + "# the same, written twice\n", "always double, again", parent="c0001"),
        {"action": "screen", "candidates": ["c0002"], "task_ids": ["search-3"], "rationale": "the task c0001 fails"},
        {"action": "full_eval", "candidate": "c0002"},
        {"action": "screen", "candidates": ["c0003"], "task_ids": ["search-1", "search-3"]},
        {"action": "full_eval", "candidate": "c0003"},
        {"action": "screen", "candidates": ["c0004"], "task_ids": ["search-5"]},
        {"action": "finish", "note": "always doubling fixes everything"},
    ]


def make_experiment(tmp_path, *, seeds=2, broken=None):
    (tmp_path / "seed.py").write_text(SEED)
    spec = make_grid(harness=str(tmp_path / "seed.py"), benchmark="arith", feedback="traces,scores", seeds=seeds,
                     models={"A": "local/gemma-3-270m"}, budget=Budget(iterations=2, rollouts=100),
                     out=str(tmp_path / "exp"), parallel=4)

    def proposer(entry, config):
        if entry.id == broken:
            return _Broken()
        if config.feedback == "traces":
            return LLMProposer(ScriptedMetaGateway(meta_script()), "local/gemma-3-270m",
                               settings=ProtocolSettings(proposals=2))
        return ScriptedProposer([[]])

    return compare(spec, benchmark=arith_benchmark(), executor_factory=lambda e, c: InlineExecutor(),
                   gateway_factory=lambda e, c: StubGateway(double_model), proposer_factory=proposer,
                   experiment_id="exp")


class _Broken:
    name = "broken"

    async def run_iteration(self, wb):
        raise RuntimeError("meta model exploded")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    result = make_experiment(tmp)
    assert result.finished
    files = write_report(result.experiment_dir)
    return result, files


# --------------------------------------------------------------------------- one run (real worker processes)


def test_run_report_from_a_real_worker_run(tmp_path):
    (tmp_path / "seed.py").write_text(SEED)
    config = OptimizeConfig(harness=str(tmp_path / "seed.py"), benchmark="arith", meta_model="scripted",
                            budget=Budget(iterations=1, rollouts=100), out=str(tmp_path / "runs"))
    proposer = ScriptedProposer([[
        {"action": "write_harness", "code": GOOD, "hypothesis": "double instead of echo"},
        {"action": "spot_check", "candidate": "c0001", "task_ids": ["search-1", "search-2"]},
        {"action": "full_eval", "candidate": "c0001"},
    ]])
    result = asyncio.run(optimize_async(config, proposer=proposer, gateway=StubGateway(double_model),
                                        benchmark=arith_benchmark()))
    files = write_report(result.run_dir)
    run = load_run(result.run_dir)
    s = run.summary
    # charged rollouts come from the ledger and add up to the budget's count
    assert [(r.kind, r.charged, r.decision) for r in run.ledger] == [
        ("full", 10, "baseline"), ("noise", 10, "noise"), ("spot", 2, "spot"), ("full", 8, "promoted"),
        ("meta", 0, "meta"), ("test", 10, "test"), ("test", 10, "test")]
    assert s.rollouts == result.spend.rollouts == 30
    assert s.rollouts_to_best == 30 and s.improvement == 1.0 and s.champion_id == "c0001"
    assert [(p.rollouts, p.score) for p in s.curve] == [(10, 0.0), (20, 0.0), (22, 0.0), (30, 1.0)]
    assert run.lineage == ["c0000", "c0001"]
    md = files["markdown"].read_text()
    assert "## Champion lineage" in md and "Hypothesis: double instead of echo" in md
    assert '+    return (await ctx.complete("double " + task.input)).strip()' in md  # the accepted diff
    assert "Accepted: promoted: +1.000" in md
    for key in ("plot_best", "plot_spend"):
        data = files[key].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    page = files["html"].read_text()
    payload = _payload(page)
    traces = payload["runs"][0]["rollouts"]
    assert any(MARKER in log["msg"] for t in traces for log in t["logs"])  # the worker's trace made it in


def test_report_of_an_eval_run(tmp_path):
    (tmp_path / "seed.py").write_text(SEED)
    result = asyncio.run(evaluate_async(str(tmp_path / "seed.py"), arith_benchmark(), split="test",
                                        out=str(tmp_path / "runs"), gateway=StubGateway(double_model)))
    files = write_report(result.run_dir, plots=False)
    assert "kind | eval" in files["markdown"].read_text() and files["html"].is_file()


# --------------------------------------------------------------------------- the meta-agent's behaviour


def test_spot_checks_full_evals_and_their_agreement(experiment):
    result, _ = experiment
    run = load_run(next(r.run_dir for r in result.runs if r.id == "traces-A-A-seed0"))
    b = run.summary.behaviour
    assert (b.spot_checks, b.full_evals, b.followed_by_full, b.agreements) == (3, 3, 2, 1)
    assert (b.spot_rollouts, b.full_rollouts) == (1 + 2 + 1, 10 + 9 + 8)
    first, second, third = b.spots
    assert first.tasks == ["search-3"] and first.spot_score == 1.0 and first.champion_on_tasks == 0.0
    assert first.spot_says_better and first.full_score == pytest.approx(0.1) and first.champion_full == pytest.approx(0.9)
    assert first.full_says_better is False and first.agree is False
    assert second.tasks == ["search-1", "search-3"] and second.champion_on_tasks == 0.5
    assert second.spot_says_better and second.full_says_better and second.agree and not second.promoted
    assert third.full_score is None and third.agree is None
    assert b.actions["screen"] == 3 and b.actions["write"] == 4 and b.refused == 0
    assert run.summary.champion_id == "c0001" and run.summary.promoted == 1
    assert run.summary.rollouts_to_best == 30  # baseline 10 + noise 10 + the promoting full evaluation 10
    # the meta-agent's spend is one ledger row per iteration: scripted replies of 100 + 20 tokens
    assert [(r.iter, r.tokens, r.note) for r in run.ledger if r.kind == "meta"] == [
        (1, 3 * 120, "local/gemma-3-270m: 3 meta-model call(s)"), (2, 8 * 120, "local/gemma-3-270m: 8 meta-model call(s)")]
    assert run.summary.meta_tokens == 11 * 120


# --------------------------------------------------------------------------- experiment report


def test_experiment_tables_comparison_and_plots(experiment):
    result, files = experiment
    exp = load_experiment(result.experiment_dir)
    traces, scores = exp.arms
    assert (traces.name, traces.runs_finished, traces.champion_test, traces.improvement) == ("traces-A-A", 2, 1.0, 1.0)
    assert (scores.champion_test, scores.improvement, scores.candidates_proposed) == (0.0, 0.0, 0)
    assert traces.behaviour.spot_checks == 6 and traces.behaviour.agreements == 2
    [c] = exp.comparisons
    assert (c.arm_a, c.arm_b, c.n_pairs, c.n_seeds) == ("traces-A-A", "scores-A-A", 20, 2)
    assert c.distinguishable and c.p_value < 0.001
    md = files["markdown"].read_text()
    assert "| traces-A-A | traces | A : A (same) | 2/2 | 1.000 (1.000-1.000) | 0.000 | +1.000" in md
    assert "- traces-A-A beats scores-A-A by 1.000 on held-out test" in md
    assert "| traces-A-A | 6 | 8 | 6 | 54 | 4 | 2/4 (50%) | 0 | 0 |" in md  # meta-agent behaviour row
    assert "### traces-A-A-seed1" in md and "Hypothesis: double instead of echo, except for 3" in md
    assert "![best_search_vs_rollouts.png](best_search_vs_rollouts.png)" in md
    assert files["plot_best"].read_bytes()[:4] == b"\x89PNG"


def test_html_is_one_self_contained_file_and_escapes_trace_text(experiment):
    _, files = experiment
    page = files["html"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no CDN, no remote anything
    assert "<link" not in page and "<script src" not in page
    assert page.count("</script>") == 2  # the hostile log line cannot close the data element
    payload = _payload(page)
    assert payload["experiment"]["comparisons"][0]["distinguishable"] is True
    assert [r["id"] for r in payload["runs"]] == ["traces-A-A-seed0", "scores-A-A-seed0", "traces-A-A-seed1",
                                                  "scores-A-A-seed1"]
    logs = [log["msg"] for t in payload["runs"][0]["rollouts"] for log in t["logs"]]
    assert HOSTILE in logs and any(MARKER in m for m in logs)
    assert payload["plots"]["best_search_vs_rollouts.png"].startswith("data:image/png;base64,")
    c1 = next(c for c in payload["runs"][0]["candidates"] if c["id"] == "c0001")
    assert c1["promoted"] and "+    verb =" in c1["diff"]


def test_failed_runs_are_reported_not_hidden(tmp_path):
    result = make_experiment(tmp_path, seeds=1, broken="scores-A-A-seed0")
    files = write_report(result.experiment_dir)
    md = files["markdown"].read_text()
    assert "| scores-A-A-seed0 | scores-A-A | 0 | failed |" in md
    assert "| scores-A-A | scores | A : A (same) | 0/1 |" in md
    assert "share no (seed, task) pairs" in md


def test_cli_report(experiment, tmp_path, capsys):
    result, _ = experiment
    assert main(["report", result.experiment_dir, "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "traces-A-A beats scores-A-A" in out and "report.html" in out
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a run directory" in capsys.readouterr().err


def _payload(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))
