"""The events of a run (`events.jsonl`): every meta-agent action and every decision, with its reason.

One pydantic record per kind of event, joined in a union discriminated by `kind`, so a line of
events.jsonl is always one of these and readers (the report, `show`, tests) get typed records.
To add a kind: define a subclass of `_Event` with a `kind` literal and add it to `Event`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from harnessopt.acceptance import PromotionDecision
from harnessopt.records import Record


class _Event(Record):
    t: float = Field(default_factory=time.time)  # wall time when it was written
    iter: int = 0  # the iteration it belongs to (0: the seed's baseline)


class CandidateCreated(_Event):
    kind: Literal["candidate"] = "candidate"
    candidate: str
    parent: str | None = None
    hypothesis: str = ""
    findings: list[str] = Field(default_factory=list)
    origin: str = ""


class NoiseFloorMeasured(_Event):
    kind: Literal["noise_floor"] = "noise_floor"
    value: float
    first: float
    rerun: float


class IterationStarted(_Event):
    kind: Literal["iteration_start"] = "iteration_start"
    proposer: str


class ActionTaken(_Event):
    kind: Literal["action"] = "action"
    step: int
    action: str
    rationale: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    observation: str = ""


class InvalidAction(_Event):
    kind: Literal["invalid_action"] = "invalid_action"
    step: int
    error: str
    raw: str = ""


class MetaStopped(_Event):
    kind: Literal["meta_stop"] = "meta_stop"
    reason: str


class MetaFailed(_Event):
    kind: Literal["meta_error"] = "meta_error"
    error: str


class SpotChecked(_Event):
    """A spot-check's facts: its tasks, its mean, and the champion's mean on the same tasks then."""

    kind: Literal["spot_check"] = "spot_check"
    candidate: str
    champion: str
    task_ids: list[str]
    trials: int
    score: float
    champion_score: float | None = None  # None: the champion has no full evaluation on them


class EvaluationChosen(_Event):
    """Why a proposal was spot-checked, fully evaluated, or left (the spot-vs-full choice)."""

    kind: Literal["eval_choice"] = "eval_choice"
    choice: Literal["spot", "full", "stop", "finish", "fallback"]
    policy: str  # meta | ladder | always-full
    candidates: list[str] = Field(default_factory=list)
    rationale: str = ""


class EvaluationSkipped(_Event):
    kind: Literal["eval_skipped"] = "eval_skipped"
    candidates: list[str] = Field(default_factory=list)
    reason: str


class NoCandidate(_Event):
    """An iteration that ended without a runnable candidate, and why."""

    kind: Literal["no_candidate"] = "no_candidate"
    reason: str


class PromotionDecided(_Event, PromotionDecision):
    """The paired comparison of a fully evaluated candidate with the champion (the decision's
    fields: promote, mean_diff, ci_low, ci_high, noise_floor, n_tasks, reason)."""

    kind: Literal["decision"] = "decision"
    candidate: str
    champion: str


class Promoted(_Event):
    kind: Literal["promoted"] = "promoted"
    candidate: str
    previous: str
    reason: str


class SearchFinished(_Event):
    kind: Literal["search_finished"] = "search_finished"
    reason: str
    champion: str


class RunFinished(_Event):
    kind: Literal["finished"] = "finished"
    champion: str
    seed_test: float
    champion_test: float


class ResumeDiverged(_Event):
    """A resumed run took another path than the killed run it replays (e.g. a wall-clock limit)."""

    kind: Literal["resume_diverged"] = "resume_diverged"
    file: str
    row: int
    recorded: str
    replayed: str
    moved_to: str


Event = Annotated[
    CandidateCreated | NoiseFloorMeasured | IterationStarted | ActionTaken | InvalidAction | MetaStopped
    | MetaFailed | SpotChecked | EvaluationChosen | EvaluationSkipped | NoCandidate | PromotionDecided | Promoted
    | SearchFinished | RunFinished | ResumeDiverged,
    Field(discriminator="kind"),
]
EVENT = TypeAdapter(Event)
# Kinds that end the meta-agent's or the search's work because a budget ran out.
STOP_KINDS = frozenset({"meta_stop", "search_finished"})


def parse_event(line: str | bytes) -> Event:
    return EVENT.validate_json(line)


def replay_identity(event: Event) -> tuple:
    """What a replayed event must share with the recorded one to count as the same step (texts
    such as observations may differ in a budget line's clock; the decision may not)."""
    return (event.kind, event.iter, getattr(event, "candidate", None), getattr(event, "action", None),
            getattr(event, "promote", None))
