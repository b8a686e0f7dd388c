"""Model specs of an experiment: `MODEL`, `MODEL@t0.9` (same weights, another temperature), the
control arms on the meta side, `--models A=...` and `--pairs META:TASK` parsing."""

from __future__ import annotations

import re

from harnessopt.errors import UsageError
from harnessopt.optimizer import GREEDY_PROPOSER, RANDOM_PROPOSER
from harnessopt.records import Record
from harnessopt.sampling import SAMPLE_ARM, SAMPLE_LABEL

_TEMP_SUFFIX = re.compile(r"^(?P<model>.+)@t(?P<temp>\d+(?:\.\d+)?)$")


class ModelSpec(Record):
    """One model as an experiment uses it: a litellm model string, optionally with its own decoding."""

    alias: str
    spec: str  # as written, e.g. "local/gemma-3-270m@t0.9"
    model: str  # what the gateway is asked for, e.g. "local/gemma-3-270m"
    temperature: float | None = None  # None: the run's default for that side
    label: str = ""


CONTROL_LABELS = {
    RANDOM_PROPOSER: "random pattern search (no model; meta side only)",
    GREEDY_PROPOSER: "digest-greedy: the draws that address the most counted failures (no model; meta side only)",
    SAMPLE_ARM: SAMPLE_LABEL,
}


def parse_model_spec(spec: str, alias: str = "") -> ModelSpec:
    """`MODEL` or `MODEL@t<temperature>` (same weights, another sampling temperature).

    Only a `@t<number>` suffix is special, so provider names with `@` (e.g. Vertex AI's
    `claude-3-5-sonnet@20240620`) pass through unchanged.
    """
    spec = spec.strip()
    if not spec:
        raise UsageError("empty model spec; give a litellm model string such as local/gemma-3-270m")
    if spec in CONTROL_LABELS:  # control arms on the meta side: random search, digest-greedy, sampling more
        return ModelSpec(alias=alias or spec, spec=spec, model=spec, label=CONTROL_LABELS[spec])
    m = _TEMP_SUFFIX.match(spec)
    if m is None:
        return ModelSpec(alias=alias or spec, spec=spec, model=spec, label=spec)
    model, temp = m.group("model"), float(m.group("temp"))
    return ModelSpec(alias=alias or spec, spec=spec, model=model, temperature=temp,
                     label=f"{model} at temperature {temp:g} (same weights, different decoding; not another model family)")


def _split_pair(pair: str, specs: dict[str, ModelSpec]) -> tuple[str, str]:
    """'A:B' -> ('A', 'B'). Sides are aliases or model strings (which may hold ':' themselves)."""
    cuts = [i for i, ch in enumerate(pair) if ch == ":"]
    both_known = [(pair[:i], pair[i + 1:]) for i in cuts if pair[:i] in specs and pair[i + 1:] in specs]
    if len(both_known) == 1:
        return both_known[0]
    if len(cuts) == 1 and cuts[0] not in (0, len(pair) - 1):
        return pair[:cuts[0]], pair[cuts[0] + 1:]
    raise ValueError(f"pair {pair!r} is not META:TASK; name the models with aliases "
                     "(--models A=MODEL,B=MODEL, then --pairs A:B)")


def parse_models_arg(text: str) -> dict[str, str]:
    """'A=local/gemma-3-270m,B=local/gemma-3-270m@t0.9' -> {'A': ..., 'B': ...}."""
    out: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        alias, eq, spec = part.partition("=")
        if not eq or not alias.strip() or not spec.strip():
            raise UsageError(f"--models entry {part!r} is not ALIAS=MODEL (e.g. A=local/gemma-3-270m)")
        out[alias.strip()] = spec.strip()
    return out
