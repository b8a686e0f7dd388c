"""The meta-agent's actions: one pydantic model each, one validated action per step.

The same models give native tool schemas (for models with tool calling) and one JSON schema
(for schema-constrained decoding, e.g. grammar-constrained llama.cpp), so even a tiny local
model always produces a structurally valid action.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from harnessopt.patterns.library import PATTERN_NAMES


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rationale: str = Field(default="", max_length=2000, description="why this action, in one or two sentences")


class Overview(_Action):
    """Show the ledger, the champion, candidates and the budget left."""

    action: Literal["overview"] = "overview"


class ListFailures(_Action):
    """List the search-split tasks a candidate failed or scored low on in its latest evaluation."""

    action: Literal["list_failures"] = "list_failures"
    candidate: str = Field(description="candidate id, e.g. c0000")


class ReadTrace(_Action):
    """Read one rollout's trace, a page at a time."""

    action: Literal["read_trace"] = "read_trace"
    candidate: str
    task_id: str
    trial: int = 0
    page: int = Field(default=1, ge=1)


class SearchTraces(_Action):
    """Search all search-split traces for a regular expression (or plain text)."""

    action: Literal["search_traces"] = "search_traces"
    pattern: str = Field(max_length=200)
    candidate: str | None = None


class ReadHarness(_Action):
    """Show a candidate's harness code."""

    action: Literal["read_harness"] = "read_harness"
    candidate: str


class Diff(_Action):
    """Unified diff between two candidates' code."""

    action: Literal["diff"] = "diff"
    a: str
    b: str


class WriteHarness(_Action):
    """Propose a complete new harness file (a new candidate whose parent is the champion)."""

    action: Literal["write_harness"] = "write_harness"
    code: str = Field(max_length=60_000)
    hypothesis: str = Field(max_length=2000, description="what this change should fix and why")
    parent: str | None = Field(default=None, description="candidate it derives from; default the champion")


class EditHarness(_Action):
    """Propose a candidate by replacing one exact snippet of a parent's code."""

    action: Literal["edit_harness"] = "edit_harness"
    search: str = Field(max_length=20_000, description="exact text that occurs once in the parent")
    replace: str = Field(max_length=20_000)
    hypothesis: str = Field(max_length=2000)
    parent: str | None = None


class ListPatterns(_Action):
    """List the harness patterns (known-good changes) for this benchmark's task shape, with their params."""

    action: Literal["list_patterns"] = "list_patterns"


class ApplyPattern(_Action):
    """Propose a candidate by applying a harness pattern to a parent (default the champion): a complete new harness."""

    action: Literal["apply_pattern"] = "apply_pattern"
    name: Literal[PATTERN_NAMES]  # type: ignore[valid-type]
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="the pattern's params (list_patterns shows them); {} for the defaults")
    hypothesis: str = Field(max_length=2000, description="what this change should fix and why")
    parent: str | None = None


class SpotCheck(_Action):
    """Run a candidate on a few chosen search-split tasks (informs; never promotes)."""

    action: Literal["spot_check"] = "spot_check"
    candidate: str
    task_ids: list[str] = Field(min_length=1, max_length=50)
    trials: int = Field(default=1, ge=1, le=5)


class FullEval(_Action):
    """Evaluate a candidate on the whole search split; a significant win over the champion promotes it."""

    action: Literal["full_eval"] = "full_eval"
    candidate: str


class Note(_Action):
    """Append a line to the run's notebook, shown at the start of every iteration."""

    action: Literal["note"] = "note"
    text: str = Field(max_length=2000)


class Finish(_Action):
    """End this iteration."""

    action: Literal["finish"] = "finish"
    note: str = Field(default="", max_length=2000)


# --------------------------------------------------------------------------- proposal-protocol headers
# Headers of the proposal protocol (meta/protocol.py). Code never travels inside them: a `write`
# or `edit` header is followed by a fenced block. Field order is the order a model writes them
# in: the short, decisive fields first, so a reply cut at max_tokens still has them.


def clamp_prediction(v: float) -> float:
    """A score change lies in [-1, 1]; a model that predicts 2.5 means "a lot": kept, clamped."""
    return max(-1.0, min(1.0, float(v)))


Prediction = Annotated[float, AfterValidator(clamp_prediction)]


class Propose(_Action):
    """Propose a candidate by picking moves from the menu; several picks are applied together, in order."""

    action: Literal["propose"] = "propose"
    moves: list[int] = Field(min_length=1, max_length=4, description="menu numbers")
    parent: str | None = Field(default=None, description="candidate to apply them to; default the champion")
    predicted: Prediction = Field(default=0.0, description="expected change of the search score, -1 to 1")
    hypothesis: str = Field(default="", max_length=2000, description="what it should fix and why, one sentence")


class Write(_Action):
    """Propose a whole new harness file: the header, then the file in a ```python fenced block."""

    action: Literal["write"] = "write"
    parent: str | None = None
    predicted: Prediction = 0.0
    hypothesis: str = Field(default="", max_length=2000)


class Edit(_Action):
    """Propose a change of a parent's code: the header, then SEARCH/REPLACE blocks in a fenced block."""

    action: Literal["edit"] = "edit"
    parent: str | None = None
    predicted: Prediction = 0.0
    hypothesis: str = Field(default="", max_length=2000)


class Screen(_Action):
    """Spot-check several candidates on the same search tasks (informs; never promotes)."""

    action: Literal["screen"] = "screen"
    candidates: list[str] = Field(min_length=1, max_length=8)
    task_ids: list[str] = Field(min_length=1, max_length=50)
    trials: int = Field(default=1, ge=1, le=5)


class Rank(_Action):
    """Choose which drawn candidates to propose (proposal mode `rank`), best first."""

    action: Literal["rank"] = "rank"
    hypothesis: str = Field(default="", max_length=2000, description="which failures the chosen candidates fix")
    picks: list[int] = Field(min_length=1, max_length=8, description="candidate numbers, best first")


INSPECT_TYPES: tuple[type[_Action], ...] = ()  # filled below, once the inspection actions exist
PROPOSE_TYPES: tuple[type[_Action], ...] = ()
DECIDE_TYPES: tuple[type[_Action], ...] = ()


ACTION_TYPES: tuple[type[_Action], ...] = (
    Overview, ListFailures, ReadTrace, SearchTraces, ReadHarness, Diff, WriteHarness, EditHarness,
    ListPatterns, ApplyPattern, SpotCheck, FullEval, Note, Finish,
)
INSPECT_TYPES = (ListFailures, ReadTrace, SearchTraces, ReadHarness)
PROPOSE_TYPES = (Propose, Write, Edit)
DECIDE_TYPES = (Screen, FullEval, Finish)
HEADER_TYPES: tuple[type[_Action], ...] = (*PROPOSE_TYPES, Screen, Rank)
MetaAction = Annotated[Union[ACTION_TYPES + HEADER_TYPES], Field(discriminator="action")]  # type: ignore[valid-type]
ACTION_ADAPTER: TypeAdapter = TypeAdapter(MetaAction)
ACTION_NAMES = [t.model_fields["action"].default for t in ACTION_TYPES + HEADER_TYPES]


def parse_action(data: dict | str) -> _Action:
    """Validate one action from a dict or JSON text; raises pydantic.ValidationError."""
    if isinstance(data, str):
        return ACTION_ADAPTER.validate_json(data)
    return ACTION_ADAPTER.validate_python(data)


CANDIDATE_ID_FIELDS = frozenset({"candidate", "a", "b", "parent"})
CANDIDATE_LIST_FIELDS = frozenset({"candidates"})
MAX_TASK_ID_ENUM = 200  # beyond this the grammar grows large; ids are still checked by the workbench


def id_enums(candidates: Sequence[str] = (), task_ids: Sequence[str] = ()) -> dict[str, dict]:
    """JSON-schema enums for the id fields, so a model under a grammar cannot invent ids."""
    enums: dict[str, dict] = {}
    if candidates:
        enums.update({name: {"type": "string", "enum": list(candidates)} for name in CANDIDATE_ID_FIELDS})
        enums.update({name: {"type": "array", "items": {"type": "string", "enum": list(candidates)}}
                      for name in CANDIDATE_LIST_FIELDS})
    if task_ids and len(task_ids) <= MAX_TASK_ID_ENUM:
        enums["task_id"] = {"type": "string", "enum": list(task_ids)}
        enums["task_ids"] = {"type": "array", "items": {"type": "string", "enum": list(task_ids)}}
    return enums


# Bounds that keep a small model from rambling to max_tokens inside a header (measured on
# Qwen-0.5B: a 240-character bound on the hypothesis costs no decoding speed).
HEADER_LIMITS = {"hypothesis": 240, "rationale": 160, "moves": 3, "candidates": 8, "task_ids": 12, "picks": 8}


def header_schema(t: type[_Action], enums: dict[str, dict] | None = None, menu: Sequence[int] = (),
                  picks: int | None = None) -> dict:
    """One header's JSON schema for constrained decoding; menu picks become an enum of menu numbers,
    and a rank reply names exactly `picks` of them when given."""
    schema = _flat_schema(t, enums)
    props = dict(schema["properties"])
    rationale = props.pop("rationale", None)
    if rationale is not None and t in DECIDE_TYPES:  # the recorded reason for a spot-vs-full choice
        props["rationale"] = rationale
    for name in ("moves", "picks"):  # menu numbers, or the numbers of a pool of drawn candidates
        if name in props and menu:
            props[name] = {"type": "array", "items": {"type": "integer", "enum": list(menu)}}
    for name, limit in HEADER_LIMITS.items():
        if name in props:
            bound = {"maxItems": limit, "minItems": 1} if props[name].get("type") == "array" else {"maxLength": limit}
            props[name] = {**props[name], **bound}
    if "picks" in props and picks:
        props["picks"] = {**props["picks"], "minItems": picks, "maxItems": picks}
    required = [n for n in schema["required"] if n in props]
    if t in PROPOSE_TYPES or t is Rank:  # every proposal states its hypothesis (and a numeric prediction)
        required += [n for n in ("predicted", "hypothesis") if n in props and n not in required]
    order = [n for n in t.model_fields if n in props and n != "rationale"] + (["rationale"] if "rationale" in props else [])
    return {**schema, "properties": {n: props[n] for n in order}, "required": required}


_NOT_IN_GRAMMAR = {"title", "description", "default", "maxLength", "minLength", "maxItems", "minItems",
                   "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}


def _flat_schema(t: type[_Action], enums: dict[str, dict] | None = None) -> dict:
    schema = t.model_json_schema()
    props = {}
    for name, prop in schema["properties"].items():
        if enums and name in enums:
            props[name] = enums[name]
            continue
        if "anyOf" in prop:  # Optional[x] -> x; the grammar stays small and the field optional
            prop = next(p for p in prop["anyOf"] if p.get("type") != "null")
        # Length bounds are checked by pydantic after decoding; as grammar rules they would
        # unroll into thousands of nested alternatives.
        prop = {k: v for k, v in prop.items() if k not in _NOT_IN_GRAMMAR}
        props[name] = prop
    props["action"] = {"const": t.model_fields["action"].default}
    required = ["action"] + [n for n in schema.get("required", []) if n != "action"]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}
