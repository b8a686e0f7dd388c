"""Load a run directory (or an experiment of runs) into records, and derive what reports show.

Definitions used in every report (docs/EXPERIMENTS.md repeats them):

- Charged rollouts of an evaluation: rollouts it paid for (not reused from disk). Each charged
  trace file is attributed to the first ledger row of its candidate written after it finished.
- Rollouts / USD to reach the best search score: charged search rollouts (and task + meta USD)
  spent up to the end of the full evaluation that made the final champion champion (the seed's
  baseline evaluation when nothing was promoted).
- Best-search-score curve: the champion's search score after each search-split evaluation,
  against charged rollouts so far.
- Spot-check verdict: the spot-check mean of candidate X on its tasks is strictly above the
  champion's mean (at that moment) on the same tasks and trials. Full verdict: X's next full
  evaluation scores strictly above the champion at that moment. They agree when both say
  "better" or both say "not better". Spot-checks never followed by a full evaluation of X are
  counted but have no agreement.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import Field

from harnessopt.records import Record, RolloutTrace
from harnessopt.stats import PairedArmTest, mean_ci, paired_arm_test
from harnessopt.store import RunStore, safe_name


class LedgerEntry(Record):
    index: int
    iter: int
    candidate: str
    parent: str = ""
    kind: str
    split: str
    n_tasks: int
    trials: int
    score: float
    tokens: int = 0
    cost_usd: float = 0.0
    status: str = ""
    note: str = ""
    time: str = ""
    epoch: float = 0.0
    charged: int = 0  # rollouts this evaluation paid for
    cum_rollouts: int = 0  # charged search rollouts so far (the budget's count)
    cum_usd: float = 0.0  # task + meta USD so far
    champion: str = ""  # champion after this row
    champion_score: float | None = None  # its search score


class CandidateInfo(Record):
    id: str
    parent: str | None = None
    hypothesis: str = ""
    diff: str = ""
    findings: list[str] = Field(default_factory=list)
    origin: str = ""
    created_at: float = 0.0
    source: str = ""
    search_score: float | None = None
    test_score: float | None = None
    promoted: bool = False
    promoted_reason: str = ""
    decision: str = ""  # the promotion decision's reason, when it had a full evaluation
    champion: bool = False
    seed: bool = False


class RolloutInfo(Record):
    """One rollout file's headline (the full trace stays in its file; `path` is relative to the run)."""

    candidate: str
    task_id: str
    trial: int
    split: str
    score: float
    status: str
    error_type: str = ""
    answer: str | None = None
    explanation: str = ""
    reused_from: str | None = None
    finished_at: float = 0.0
    wall_s: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0
    path: str


class SpotCheckOutcome(Record):
    candidate: str
    iter: int
    champion: str
    tasks: list[str] = Field(default_factory=list)
    trials: int = 1
    rollouts: int = 0
    spot_score: float
    champion_on_tasks: float | None = None
    spot_says_better: bool
    full_score: float | None = None
    champion_full: float | None = None
    full_says_better: bool | None = None
    promoted: bool = False
    agree: bool | None = None


class MetaBehaviour(Record):
    spot_checks: int = 0
    full_evals: int = 0
    spot_rollouts: int = 0
    full_rollouts: int = 0
    followed_by_full: int = 0
    agreements: int = 0
    refused: int = 0  # spot_check / full_eval actions refused (budget, unknown candidate, ...)
    invalid_actions: int = 0
    actions: dict[str, int] = Field(default_factory=dict)
    spots: list[SpotCheckOutcome] = Field(default_factory=list)

    @property
    def agreement_rate(self) -> float | None:
        return self.agreements / self.followed_by_full if self.followed_by_full else None

    def add(self, other: "MetaBehaviour") -> None:
        for name in ("spot_checks", "full_evals", "spot_rollouts", "full_rollouts", "followed_by_full",
                     "agreements", "refused", "invalid_actions"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.actions.items():
            self.actions[k] = self.actions.get(k, 0) + v
        self.spots += other.spots


class CurvePoint(Record):
    rollouts: int
    usd: float
    score: float


class RunSummary(Record):
    run_id: str
    path: str
    finished: bool
    feedback: str = ""
    task_model: str = ""
    meta_model: str = ""
    task_temperature: float | None = None
    meta_temperature: float | None = None
    seed: int = 0
    benchmark: str = ""
    seed_id: str = ""
    champion_id: str = ""
    seed_search: float | None = None
    champion_search: float | None = None
    seed_test: float | None = None
    champion_test: float | None = None
    champion_test_ci: tuple[float, float] | None = None
    improvement: float | None = None  # champion test - seed test
    noise_floor: float | None = None
    rollouts: int = 0  # charged search rollouts
    test_rollouts: int = 0
    task_usd: float = 0.0
    meta_usd: float = 0.0
    task_tokens: int = 0
    meta_tokens: int = 0
    rollouts_to_best: int | None = None
    usd_to_best: float | None = None
    candidates_proposed: int = 0
    promoted: int = 0
    stop_reason: str = ""
    behaviour: MetaBehaviour = Field(default_factory=MetaBehaviour)
    curve: list[CurvePoint] = Field(default_factory=list)
    champion_test_tasks: dict[str, float] = Field(default_factory=dict)  # task -> mean over trials
    seed_test_tasks: dict[str, float] = Field(default_factory=dict)


class RunData(Record):
    path: str
    run_id: str
    info: dict[str, Any]
    ledger: list[LedgerEntry]
    events: list[dict[str, Any]]
    candidates: list[CandidateInfo]
    rollouts: list[RolloutInfo]
    notebook: str = ""
    meta_transcripts: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    lineage: list[str] = Field(default_factory=list)  # seed ... final champion
    summary: RunSummary


# --------------------------------------------------------------------------- loading one run


def _epoch(stamp: str) -> float:
    try:
        return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return 0.0


def _num(text: Any, cast: type = float, default: Any = 0) -> Any:
    try:
        return cast(text)
    except (TypeError, ValueError):
        return default


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / "run.json").is_file() and (Path(path) / "ledger.tsv").is_file()


def is_experiment_dir(path: str | Path) -> bool:
    return (Path(path) / "experiment.json").is_file()


def load_traces(path: str | Path) -> list[RolloutTrace]:
    """Every rollout trace of a run (full records)."""
    store = RunStore.open(path)
    out = []
    for p in sorted((store.path / "rollouts").glob("*/*/*.json")):
        try:
            out.append(store.read_rollout(p))
        except Exception:  # noqa: BLE001 - a file cut by a kill is skipped, never fatal
            continue
    return out


def load_run(path: str | Path, traces: list[RolloutTrace] | None = None) -> RunData:
    store = RunStore.open(path)
    info = store.info()
    config = info.get("config") or {}
    traces = traces if traces is not None else load_traces(store.path)
    events = store.events()
    metas = {m.id: m for m in store.candidates()}
    ledger = [
        LedgerEntry(index=i, iter=_num(r.get("iter"), int), candidate=r.get("candidate", ""),
                    parent=r.get("parent") or "", kind=r.get("kind", ""), split=r.get("split", ""),
                    n_tasks=_num(r.get("n_tasks"), int), trials=_num(r.get("trials"), int, 1),
                    score=_num(r.get("score")), tokens=_num(r.get("tokens"), int), cost_usd=_num(r.get("cost_usd")),
                    status=r.get("status", ""), note=r.get("note", ""), time=r.get("time", ""),
                    epoch=_epoch(r.get("time", "")))
        for i, r in enumerate(store.ledger())
    ]
    charged_traces = _attribute_charges(ledger, traces)
    meta_usd_at = _meta_spend_times(store.path)
    promotions = [e for e in events if e.get("kind") == "promoted"]
    decisions = {e.get("candidate"): e.get("reason", "") for e in events if e.get("kind") == "decision"}

    # Replay the ledger: champion, its score, cumulative spend.
    queue = [e.get("candidate") for e in promotions]
    champion, champion_score = "", None
    cum_rollouts, cum_task_usd = 0, 0.0
    best_row: LedgerEntry | None = None
    for row in ledger:
        if row.split == "search":
            cum_rollouts += row.charged
        cum_task_usd += row.cost_usd if row.kind != "test" else 0.0
        if row.kind == "full" and row.split == "search":
            if not champion:
                champion, champion_score, best_row = row.candidate, row.score, row
            elif queue and queue[0] == row.candidate:
                queue.pop(0)
                champion, champion_score, best_row = row.candidate, row.score, row
        row.cum_rollouts = cum_rollouts
        row.cum_usd = cum_task_usd + sum(u for t, u in meta_usd_at if t <= row.epoch + 1)
        row.champion, row.champion_score = champion, champion_score

    by_cand_split: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in traces:
        by_cand_split[(t.candidate_id, t.split)][t.task_id].append(t.score)

    def task_means(cid: str, split: str) -> dict[str, float]:
        return {k: sum(v) / len(v) for k, v in sorted(by_cand_split.get((cid, split), {}).items())}

    result = info.get("result") or {}
    seed_id = result.get("seed_id") or (ledger[0].candidate if ledger else "c0000")
    final = result.get("champion_id") or info.get("champion") or champion or seed_id
    full_scores: dict[str, float] = {}
    test_scores: dict[str, float] = {}
    for row in ledger:
        if row.kind == "full" and row.split == "search":
            full_scores[row.candidate] = row.score
        if row.kind == "test":
            test_scores[row.candidate] = row.score
    promoted_reason = {e.get("candidate"): e.get("reason", "") for e in promotions}
    candidates = [
        CandidateInfo(id=m.id, parent=m.parent, hypothesis=m.hypothesis, diff=m.diff, findings=m.findings,
                      origin=m.origin, created_at=m.created_at, source=_read(store.candidate_dir(m.id) / "harness.py"),
                      search_score=full_scores.get(m.id), test_score=test_scores.get(m.id),
                      promoted=m.id in promoted_reason, promoted_reason=promoted_reason.get(m.id, ""),
                      decision=decisions.get(m.id, ""), champion=m.id == final, seed=m.id == seed_id)
        for m in metas.values()
    ]
    lineage = []
    cid: str | None = final
    while cid and cid in metas and cid not in lineage:
        lineage.append(cid)
        cid = metas[cid].parent
    lineage.reverse()

    meta = _meta_behaviour(ledger, events, traces, by_cand_split, charged_traces)
    curve = [CurvePoint(rollouts=r.cum_rollouts, usd=r.cum_usd, score=r.champion_score)
             for r in ledger if r.split == "search" and r.champion_score is not None]
    spend = info.get("spend") or (result.get("spend") if result else None) or {}
    champ_test = result.get("champion_test") or {}
    seed_test = result.get("seed_test") or {}
    rollouts_info = [
        RolloutInfo(candidate=t.candidate_id, task_id=t.task_id, trial=t.trial, split=t.split, score=t.score,
                    status=t.status, error_type=t.error.type if t.error else "", answer=t.answer,
                    explanation=t.explanation, reused_from=t.reused_from, finished_at=t.finished_at,
                    wall_s=t.wall_s, tokens=t.usage.tokens, cost_usd=t.usage.cost_usd,
                    path=str(store.rollout_path(t.candidate_id, t.task_id, t.trial).relative_to(store.path)))
        for t in traces
    ]
    summary = RunSummary(
        run_id=store.run_id, path=str(store.path), finished=bool(info.get("finished")),
        feedback=config.get("feedback", ""), task_model=config.get("task_model", info.get("task_model", "")),
        meta_model=config.get("meta_model", ""), task_temperature=config.get("temperature"),
        meta_temperature=config.get("meta_temperature"), seed=_num(config.get("seed", info.get("seed", 0)), int),
        benchmark=config.get("benchmark", info.get("benchmark", "")), seed_id=seed_id, champion_id=final,
        seed_search=full_scores.get(seed_id), champion_search=full_scores.get(final, full_scores.get(seed_id)),
        seed_test=seed_test.get("score", test_scores.get(seed_id)),
        champion_test=champ_test.get("score", test_scores.get(final)),
        champion_test_ci=(champ_test["ci_low"], champ_test["ci_high"]) if "ci_low" in champ_test else None,
        noise_floor=result.get("noise_floor"),
        rollouts=sum(r.charged for r in ledger if r.split == "search"),
        test_rollouts=sum(r.charged for r in ledger if r.kind == "test"),
        task_usd=(spend.get("task") or {}).get("cost_usd", 0.0), meta_usd=(spend.get("meta") or {}).get("cost_usd", 0.0),
        task_tokens=_usage_tokens(spend.get("task")), meta_tokens=_usage_tokens(spend.get("meta")),
        rollouts_to_best=best_row.cum_rollouts if best_row else None,
        usd_to_best=best_row.cum_usd if best_row else None,
        candidates_proposed=sum(1 for m in metas.values() if m.id != seed_id),
        promoted=len(promotions), stop_reason=result.get("stop_reason", ""), behaviour=meta, curve=curve,
        champion_test_tasks=task_means(final, "test"), seed_test_tasks=task_means(seed_id, "test"),
    )
    if summary.seed_test is not None and summary.champion_test is not None:
        summary.improvement = summary.champion_test - summary.seed_test
    transcripts = {}
    for p in sorted((store.path / "meta").glob("*.jsonl")):
        lines = []
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        transcripts[p.stem] = lines
    return RunData(path=str(store.path), run_id=store.run_id, info=info, ledger=ledger, events=events,
                   candidates=candidates, rollouts=rollouts_info, notebook=_read(store.path / "notebook.md"),
                   meta_transcripts=transcripts, lineage=lineage, summary=summary)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _usage_tokens(usage: dict | None) -> int:
    usage = usage or {}
    return int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))


def _attribute_charges(ledger: list[LedgerEntry], traces: list[RolloutTrace]) -> dict[int, list[RolloutTrace]]:
    """Give each paid-for trace to the first ledger row of its candidate and split written after it
    (with room left: a row pays for at most tasks x trials rollouts). Returns row index -> traces."""
    out: dict[int, list[RolloutTrace]] = defaultdict(list)
    rows: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    for row in ledger:
        rows[(row.candidate, row.split)].append(row)
    paid: dict[tuple[str, str], list[RolloutTrace]] = defaultdict(list)
    for t in traces:
        if t.reused_from is None:
            paid[(t.candidate_id, t.split)].append(t)
    for key, items in paid.items():
        candidates = rows.get(key, [])
        if not candidates:
            continue
        items.sort(key=lambda t: t.finished_at)
        i = 0
        for t in items:
            # first row (from i on) written in or after the second the trace finished, with room left
            while i < len(candidates) - 1 and (
                    (candidates[i].epoch and int(t.finished_at) > candidates[i].epoch)
                    or candidates[i].charged >= candidates[i].n_tasks * candidates[i].trials):
                i += 1
            candidates[i].charged += 1
            out[candidates[i].index].append(t)
    return out


def _meta_spend_times(path: Path) -> list[tuple[float, float]]:
    """(time, USD) of every cached meta-model response (the cache file's modification time)."""
    out = []
    for p in (path / "meta_cache").glob("*.json"):
        try:
            usd = float(json.loads(p.read_text(encoding="utf-8")).get("cost_usd", 0.0))
            out.append((p.stat().st_mtime, usd))
        except (OSError, ValueError, AttributeError):
            continue
    return out


def _meta_behaviour(ledger: list[LedgerEntry], events: list[dict[str, Any]], traces: list[RolloutTrace],
                    by_cand_split: dict, charged_traces: dict[int, list[RolloutTrace]]) -> MetaBehaviour:
    mb = MetaBehaviour()
    actions = [e for e in events if e.get("kind") == "action"]
    mb.actions = dict(Counter(e.get("action", "?") for e in actions))
    mb.invalid_actions = sum(1 for e in events if e.get("kind") == "invalid_action")
    mb.refused = sum(1 for e in actions if e.get("action") in ("spot_check", "full_eval")
                     and str(e.get("observation", "")).startswith("error:"))
    spot_actions = [e for e in actions if e.get("action") == "spot_check"
                    and str(e.get("observation", "")).startswith("spot-check of")]
    traces_by_cand: dict[str, list[RolloutTrace]] = defaultdict(list)
    for t in traces:
        if t.split == "search":
            traces_by_cand[t.candidate_id].append(t)

    def mean_on(cid: str, tasks: list[str], trials: int) -> float | None:
        per = by_cand_split.get((cid, "search"), {})
        vals = []
        for task in tasks:
            scores = [t.score for t in traces_by_cand.get(cid, []) if t.task_id == task and t.trial < trials]
            if scores:
                vals.append(sum(scores) / len(scores))
            elif task in per:
                vals.append(sum(per[task]) / len(per[task]))
        return sum(vals) / len(vals) if vals else None

    spot_i = 0
    for i, row in enumerate(ledger):
        if row.iter < 1 or row.split != "search":
            continue
        if row.kind == "full":
            mb.full_evals += 1
            mb.full_rollouts += row.charged
        if row.kind != "spot":
            continue
        mb.spot_checks += 1
        mb.spot_rollouts += row.charged
        action = spot_actions[spot_i] if spot_i < len(spot_actions) else None
        spot_i += 1
        args = (action or {}).get("args") or {}
        tasks = list(dict.fromkeys(args.get("task_ids") or []))
        if not tasks or args.get("candidate") != row.candidate:
            # no matching action event (e.g. a scripted proposer): the tasks this row paid for
            tasks = list(dict.fromkeys(t.task_id for t in charged_traces.get(row.index, [])))
        champion = ledger[i - 1].champion if i else ""
        champ_full_trials = next((r.trials for r in ledger if r.candidate == champion and r.kind == "full"), 1)
        champ_on = mean_on(champion, tasks, champ_full_trials) if tasks else None
        if champ_on is None:
            champ_on = ledger[i - 1].champion_score if i else None
        spot_better = champ_on is not None and row.score > champ_on
        outcome = SpotCheckOutcome(candidate=row.candidate, iter=row.iter, champion=champion, tasks=tasks,
                                   trials=row.trials, rollouts=row.charged, spot_score=row.score,
                                   champion_on_tasks=champ_on, spot_says_better=spot_better)
        nxt = next((j for j in range(i + 1, len(ledger)) if ledger[j].candidate == row.candidate
                    and ledger[j].kind == "full" and ledger[j].split == "search"), None)
        if nxt is not None:
            full = ledger[nxt]
            champ_before = ledger[nxt - 1].champion_score
            outcome.full_score = full.score
            outcome.champion_full = champ_before
            outcome.full_says_better = champ_before is not None and full.score > champ_before
            outcome.promoted = full.champion == row.candidate and ledger[nxt - 1].champion != row.candidate
            outcome.agree = outcome.full_says_better == spot_better
            mb.followed_by_full += 1
            mb.agreements += int(outcome.agree)
        mb.spots.append(outcome)
    return mb


# --------------------------------------------------------------------------- experiments


class ArmSummary(Record):
    name: str
    feedback: str
    meta: str
    task: str
    meta_label: str = ""
    task_label: str = ""
    same_model: bool = True
    seeds: list[int] = Field(default_factory=list)
    runs_finished: int = 0
    runs_total: int = 0
    champion_test: float | None = None
    champion_test_ci: tuple[float, float] | None = None
    seed_test: float | None = None
    improvement: float | None = None
    improvement_ci: tuple[float, float] | None = None
    rollouts_to_best: float | None = None
    usd_to_best: float | None = None
    rollouts: float = 0.0
    usd: float = 0.0
    candidates_proposed: int = 0
    promoted: int = 0
    behaviour: MetaBehaviour = Field(default_factory=MetaBehaviour)


class ExperimentData(Record):
    path: str
    id: str
    spec: dict[str, Any]
    models: dict[str, dict[str, Any]]
    arms: list[ArmSummary]
    runs: dict[str, RunData]  # run id -> data (finished or not)
    run_arm: dict[str, str]  # run id -> arm name
    run_status: dict[str, str]
    comparisons: list[PairedArmTest]
    budget_text: str = ""


def load_experiment(path: str | Path) -> ExperimentData:
    path = Path(path)
    data = json.loads((path / "experiment.json").read_text(encoding="utf-8"))
    from harnessopt.comparison import GridSpec

    spec = GridSpec.model_validate(data["spec"])
    models = data.get("models") or {a: m.model_dump() for a, m in spec.model_specs().items()}
    runs: dict[str, RunData] = {}
    run_arm: dict[str, str] = {}
    status: dict[str, str] = {}
    for entry in data.get("runs", []):
        run_arm[entry["id"]] = entry["arm"]
        status[entry["id"]] = entry.get("status", "")
        rd = path / "runs" / entry["id"]
        if is_run_dir(rd):
            runs[entry["id"]] = load_run(rd)
    arms = []
    for arm in spec.arms():
        mine = [runs[r] for r, a in run_arm.items() if a == arm.name and r in runs]
        done = [r.summary for r in mine if r.summary.finished]
        s = ArmSummary(name=arm.name, feedback=arm.feedback, meta=arm.meta, task=arm.task,
                       meta_label=models.get(arm.meta, {}).get("label", arm.meta),
                       task_label=models.get(arm.task, {}).get("label", arm.task), same_model=arm.same_model,
                       seeds=sorted(x.seed for x in done), runs_finished=len(done),
                       runs_total=sum(1 for a in run_arm.values() if a == arm.name))
        tests = [x.champion_test for x in done if x.champion_test is not None]
        if tests:
            m, lo, hi = mean_ci(tests)
            s.champion_test, s.champion_test_ci = m, (lo, hi)
        seeds_ = [x.seed_test for x in done if x.seed_test is not None]
        s.seed_test = sum(seeds_) / len(seeds_) if seeds_ else None
        imps = [x.improvement for x in done if x.improvement is not None]
        if imps:
            m, lo, hi = mean_ci(imps)
            s.improvement, s.improvement_ci = m, (lo, hi)
        rtb = [x.rollouts_to_best for x in done if x.rollouts_to_best is not None]
        s.rollouts_to_best = sum(rtb) / len(rtb) if rtb else None
        utb = [x.usd_to_best for x in done if x.usd_to_best is not None]
        s.usd_to_best = sum(utb) / len(utb) if utb else None
        s.rollouts = sum(x.rollouts for x in done) / len(done) if done else 0.0
        s.usd = sum(x.task_usd + x.meta_usd for x in done) / len(done) if done else 0.0
        s.candidates_proposed = sum(x.candidates_proposed for x in done)
        s.promoted = sum(x.promoted for x in done)
        for x in done:
            s.behaviour.add(x.behaviour)
        arms.append(s)
    comparisons = []
    by_name = {a.name: a for a in spec.arms()}
    for a, b in arm_pairs(list(by_name.values())):
        comparisons.append(paired_arm_test(
            _test_table(runs, run_arm, a.name), _test_table(runs, run_arm, b.name),
            arm_a=a.name, arm_b=b.name, budget_text=spec.budget_text()))
    return ExperimentData(path=str(path), id=data.get("id", path.name), spec=data["spec"], models=models,
                          arms=arms, runs=runs, run_arm=run_arm, run_status=status, comparisons=comparisons,
                          budget_text=spec.budget_text())


def arm_pairs(arms: list[Any]) -> list[tuple[Any, Any]]:
    """Arm pairs that differ in one factor: feedback mode (same pairing), or the meta model for the
    same task model and feedback (same-model vs cross-model with the task side held fixed)."""
    order = {"traces": 0, "summary": 1, "scores": 2}
    out = []
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            if a.meta == b.meta and a.task == b.task and a.feedback != b.feedback:
                x, y = sorted((a, b), key=lambda arm: order.get(arm.feedback, 9))
                out.append((x, y))
            elif a.feedback == b.feedback and a.task == b.task and a.meta != b.meta:
                x, y = (a, b) if a.same_model or not b.same_model else (b, a)
                out.append((x, y))
    return out


def _test_table(runs: dict[str, RunData], run_arm: dict[str, str], arm: str) -> dict[tuple[str, str], float]:
    out = {}
    for rid, a in run_arm.items():
        if a != arm or rid not in runs or not runs[rid].summary.finished:
            continue
        s = runs[rid].summary
        for task, score in s.champion_test_tasks.items():
            out[(str(s.seed), task)] = score
    return out


def run_label(run: RunData) -> str:
    s = run.summary
    return f"{s.run_id} ({s.feedback}, meta {s.meta_model}, task {s.task_model}, seed {s.seed})"


__all__ = [
    "ArmSummary", "CandidateInfo", "CurvePoint", "ExperimentData", "LedgerEntry", "MetaBehaviour", "RolloutInfo",
    "RunData", "RunSummary", "SpotCheckOutcome", "arm_pairs", "is_experiment_dir", "is_run_dir", "load_experiment",
    "load_run", "load_traces", "run_label", "safe_name",
]
