"""Load a run directory (or an experiment of runs) into records, and derive what reports show.

Every number comes from facts the run wrote: the ledger's rows (what each evaluation charged and
what was decided, and each iteration's meta spend), the typed events and the rollout files.
Definitions used in every report (docs/EXPERIMENTS.md repeats them):

- Charged rollouts of an evaluation: the ledger's `charged` column (what the budget counted).
- Rollouts to reach the best search score: charged search rollouts up to and including the full
  evaluation that made the final champion champion (the seed's baseline when nothing was
  promoted). USD to reach it: task USD of the search evaluations up to that row, plus the meta
  USD of every iteration up to and including the one it happened in.
- Best-search-score curve: the champion's search score after each search-split evaluation,
  against charged search rollouts so far (and task + meta USD recorded so far).
- Spot-check verdict: the spot-check mean of candidate X on its tasks is strictly above the
  champion's full-evaluation mean on the same tasks at that moment (both recorded in the
  spot-check's event). Full verdict: X's next full evaluation scores strictly above the champion
  at that moment. They agree when both say "better" or both say "not better". Spot-checks never
  followed by a full evaluation of X are counted but have no agreement.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import Field

from harnessopt import events as E
from harnessopt.ledger import LedgerRow
from harnessopt.records import Record, RolloutTrace
from harnessopt.report.calibration import Calibration, calibrate, prediction_points
from harnessopt.sampling import SamplingSummary
from harnessopt.store import CandidateMeta, RunStore, safe_name


class ReportRow(LedgerRow):
    """A ledger row with what follows from the rows before it."""

    index: int
    cum_rollouts: int = 0  # charged search rollouts so far (the budget's count)
    cum_usd: float = 0.0  # task (search) + meta USD so far
    champion: str = ""  # champion after this row
    champion_score: float | None = None  # its search score


class CandidateInfo(CandidateMeta):
    """A candidate's meta.json, its code, and how it fared."""

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
    calibration: Calibration = Field(default_factory=Calibration)  # predicted vs measured score changes
    sampling: SamplingSummary | None = None  # the sample arm's K, votes, pass@1 and pass@K


class RunData(Record):
    path: str
    run_id: str
    info: dict[str, Any]
    ledger: list[ReportRow]
    events: list[E.Event]
    candidates: list[CandidateInfo]
    rollouts: list[RolloutInfo]
    notebook: str = ""
    meta_transcripts: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    lineage: list[str] = Field(default_factory=list)  # seed ... final champion
    summary: RunSummary


# --------------------------------------------------------------------------- loading one run


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / "run.json").is_file()


def is_experiment_dir(path: str | Path) -> bool:
    return (Path(path) / "experiment.json").is_file()


def load_traces(path: str | Path) -> list[RolloutTrace]:
    """Every rollout trace of a run (full records)."""
    return RunStore.open(path).all_rollouts()


def load_run(path: str | Path, traces: list[RolloutTrace] | None = None) -> RunData:
    store = RunStore.open(path)
    info = store.info()
    config = info.get("config") or {}
    traces = traces if traces is not None else store.all_rollouts()
    events = store.events()
    metas = {m.id: m for m in store.candidates()}
    ledger = _with_progress(store.ledger())

    result = info.get("result") or {}
    seed_id = result.get("seed_id") or next((r.candidate for r in ledger if r.decision in ("baseline", "eval")), "c0000")
    final = result.get("champion_id") or info.get("champion") or (ledger[-1].champion if ledger else "") or seed_id
    best_row = next((r for r in reversed(ledger) if r.candidate == final and r.decision in ("baseline", "promoted")), None)
    full_scores = {r.candidate: r.score for r in ledger if r.kind == "full"}
    test_scores = {r.candidate: r.score for r in ledger if r.kind == "test"}
    promotions = [e for e in events if isinstance(e, E.Promoted)]
    promoted_reason = {e.candidate: e.reason for e in promotions}
    decisions = {e.candidate: e.reason for e in events if isinstance(e, E.PromotionDecided)}
    candidates = [
        CandidateInfo(**m.model_dump(), source=_read(store.harness_path(m.id)),
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

    by_cand_split: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in traces:
        by_cand_split[(t.candidate_id, t.split)][t.task_id].append(t.score)

    def task_means(cid: str, split: str) -> dict[str, float]:
        return {k: sum(v) / len(v) for k, v in sorted(by_cand_split.get((cid, split), {}).items())}

    search = [r for r in ledger if r.split == "search"]
    meta_rows = [r for r in ledger if r.kind == "meta"]
    champ_test = result.get("champion_test") or {}
    seed_test = result.get("seed_test") or {}
    rollouts_info = [
        RolloutInfo(candidate=t.candidate_id, task_id=t.task_id, trial=t.trial, split=t.split, score=t.score,
                    status=t.status, error_type=t.error.type if t.error else "", answer=t.answer,
                    explanation=t.explanation, reused_from=t.reused_from, finished_at=t.finished_at,
                    wall_s=t.wall_s, tokens=t.usage.tokens, cost_usd=t.usage.cost_usd,
                    path=store.relative(store.rollout_path(t.candidate_id, t.task_id, t.trial)))
        for t in traces
    ]
    summary = RunSummary(
        run_id=store.run_id, path=str(store.path), finished=bool(info.get("finished")),
        feedback=config.get("feedback", ""), task_model=config.get("task_model", info.get("task_model", "")),
        meta_model=config.get("meta_model", ""), task_temperature=config.get("temperature"),
        meta_temperature=config.get("meta_temperature"), seed=int(config.get("seed", info.get("seed", 0)) or 0),
        benchmark=config.get("benchmark", info.get("benchmark", "")), seed_id=seed_id, champion_id=final,
        seed_search=full_scores.get(seed_id), champion_search=full_scores.get(final, full_scores.get(seed_id)),
        seed_test=seed_test.get("score", test_scores.get(seed_id)),
        champion_test=champ_test.get("score", test_scores.get(final)),
        champion_test_ci=(champ_test["ci_low"], champ_test["ci_high"]) if "ci_low" in champ_test else None,
        noise_floor=result.get("noise_floor"),
        rollouts=sum(r.charged for r in search),
        test_rollouts=sum(r.charged for r in ledger if r.kind == "test"),
        task_usd=sum(r.cost_usd for r in search), meta_usd=sum(r.cost_usd for r in meta_rows),
        task_tokens=sum(r.tokens for r in search), meta_tokens=sum(r.tokens for r in meta_rows),
        rollouts_to_best=best_row.cum_rollouts if best_row else None,
        usd_to_best=_usd_to_best(ledger, best_row),
        candidates_proposed=sum(1 for m in metas.values() if m.id != seed_id),
        promoted=len(promotions), stop_reason=result.get("stop_reason", ""), behaviour=_meta_behaviour(ledger, events),
        curve=[CurvePoint(rollouts=r.cum_rollouts, usd=r.cum_usd, score=r.champion_score)
               for r in search if r.champion_score is not None],
        champion_test_tasks=task_means(final, "test"), seed_test_tasks=task_means(seed_id, "test"),
        calibration=calibrate(prediction_points(ledger, events, candidates)),
    )
    if info.get("sampling"):  # the sample arm: per task, the majority vote's score (and pass@1 as the seed's)
        summary.sampling = SamplingSummary.model_validate(info["sampling"])
        summary.champion_test_tasks = {v.task_id: v.score for v in summary.sampling.votes}
        summary.seed_test_tasks = {v.task_id: v.pass1 for v in summary.sampling.votes}
    if summary.seed_test is not None and summary.champion_test is not None:
        summary.improvement = summary.champion_test - summary.seed_test
    return RunData(path=str(store.path), run_id=store.run_id, info=info, ledger=ledger, events=events,
                   candidates=candidates, rollouts=rollouts_info, notebook=store.notebook(),
                   meta_transcripts=store.transcripts(), lineage=lineage, summary=summary)


def _with_progress(rows: list[LedgerRow]) -> list[ReportRow]:
    """Each row with the champion after it (from the recorded decisions) and the spend so far."""
    out = []
    champion, champion_score, cum_rollouts, cum_usd = "", None, 0, 0.0
    for i, row in enumerate(rows):
        if row.split == "search":
            cum_rollouts += row.charged
        if row.kind != "test":
            cum_usd += row.cost_usd
        if row.kind == "full" and row.decision in ("baseline", "promoted"):
            champion, champion_score = row.candidate, row.score
        out.append(ReportRow(**row.model_dump(), index=i, cum_rollouts=cum_rollouts, cum_usd=cum_usd,
                             champion=champion, champion_score=champion_score))
    return out


def _usd_to_best(ledger: list[ReportRow], best: ReportRow | None) -> float | None:
    if best is None:
        return None
    meta_after = sum(r.cost_usd for r in ledger[best.index + 1:] if r.kind == "meta" and r.iter == best.iter)
    return best.cum_usd + meta_after


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _meta_behaviour(ledger: list[ReportRow], events: list[E.Event]) -> MetaBehaviour:
    mb = MetaBehaviour()
    actions = [e for e in events if isinstance(e, E.ActionTaken)]
    mb.actions = dict(Counter(e.action for e in actions))
    mb.invalid_actions = sum(1 for e in events if isinstance(e, E.InvalidAction))
    mb.refused = sum(1 for e in actions if e.action in ("spot_check", "screen", "full_eval") and e.observation.startswith("error:"))
    # A spot-check writes its ledger row and then its event: the n-th of each belong together.
    facts = iter([e for e in events if isinstance(e, E.SpotChecked)])
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
        fact = next(facts, None)
        if fact is not None and fact.candidate != row.candidate:
            fact = None
        champ_on = fact.champion_score if fact else None
        spot_better = champ_on is not None and row.score > champ_on
        outcome = SpotCheckOutcome(candidate=row.candidate, iter=row.iter, champion=fact.champion if fact else row.champion,
                                   tasks=fact.task_ids if fact else [], trials=row.trials, rollouts=row.charged,
                                   spot_score=row.score, champion_on_tasks=champ_on, spot_says_better=spot_better)
        nxt = next((j for j in range(i + 1, len(ledger)) if ledger[j].candidate == row.candidate
                    and ledger[j].kind == "full"), None)
        if nxt is not None:
            full = ledger[nxt]
            champ_before = ledger[nxt - 1].champion_score
            outcome.full_score = full.score
            outcome.champion_full = champ_before
            outcome.full_says_better = champ_before is not None and full.score > champ_before
            outcome.promoted = full.decision == "promoted"
            outcome.agree = outcome.full_says_better == spot_better
            mb.followed_by_full += 1
            mb.agreements += int(outcome.agree)
        mb.spots.append(outcome)
    return mb


def run_label(run: RunData) -> str:
    s = run.summary
    return f"{s.run_id} ({s.feedback}, meta {s.meta_model}, task {s.task_model}, seed {s.seed})"


__all__ = [
    "CandidateInfo", "CurvePoint", "MetaBehaviour", "ReportRow", "RolloutInfo",
    "RunData", "RunSummary", "SpotCheckOutcome", "is_experiment_dir", "is_run_dir", "load_run", "load_traces",
    "run_label", "safe_name",
]
