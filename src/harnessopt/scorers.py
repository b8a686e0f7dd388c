"""Scorers: compare a harness's answer with a task's target, in the parent process.

A scorer is any callable ``(answer: str, task: LabelledTask, **params) -> Score``. Built-ins are
registered by name (``exact``, ``normalized_exact``, ``numeric``, ``label``, ``python_tests``,
``callable``); add your own with :func:`register`, or name a function as ``"module:function"``
(or ``"path/to/file.py:function"``) wherever a scorer name is accepted.

Besides the spec's own params, :class:`~harnessopt.benchmark.Benchmark` passes two context
keywords to every built-in: ``labels`` (the benchmark's label set or ``None``) and ``hidden``
(the task's scorer-only fields, e.g. HumanEval's ``test``; never shown to a harness). Built-ins
ignore keywords they do not use.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import numbers
import re
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from harnessopt.records import LabelledTask, Score

__all__ = [
    "Scorer",
    "ScorerError",
    "register",
    "get_scorer",
    "known_scorers",
    "resolve_callable",
    "normalize_text",
    "extract_number",
    "match_label",
    "build_humaneval_program",
    "exact",
    "normalized_exact",
    "numeric",
    "label",
    "python_tests",
    "callable_scorer",
]


class ScorerError(ValueError):
    """A scorer could not be found or configured (one line, names the fix)."""


class Scorer(Protocol):
    def __call__(self, answer: str, task: LabelledTask, /, **params: Any) -> Score: ...


_REGISTRY: dict[str, Callable[..., Score]] = {}


def register(name: str, fn: Callable[..., Score] | None = None):
    """Register ``fn`` under ``name``; usable as a decorator (``@register("mine")``)."""

    def deco(f: Callable[..., Score]) -> Callable[..., Score]:
        _REGISTRY[name] = f
        return f

    return deco(fn) if fn is not None else deco


def known_scorers() -> list[str]:
    return sorted(_REGISTRY)


def get_scorer(name_or_fn: str | Callable[..., Any], *, base_dir: Path | None = None) -> Callable[..., Score]:
    """A registered scorer by name, a ``"module:function"`` reference, or a callable (wrapped so
    it may return a Score, a float/bool or a ``(float, explanation)`` pair)."""
    if callable(name_or_fn):
        return _wrap_user(name_or_fn)
    name = str(name_or_fn)
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _wrap_user(resolve_callable(name, base_dir=base_dir))
    raise ScorerError(
        f"unknown scorer {name!r}; known scorers: {', '.join(known_scorers())} "
        "(or give a user function as 'module:function')"
    )


# --------------------------------------------------------------------------- helpers


def normalize_text(text: str) -> str:
    """Lowercase, punctuation and underscores to spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    return " ".join(text.split())


def _to_score(result: Any, where: str) -> Score:
    if isinstance(result, Score):
        return result
    explanation = ""
    if isinstance(result, tuple) and len(result) == 2:
        result, explanation = result
    if isinstance(result, numbers.Real):
        value = float(result)
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise ScorerError(f"scorer {where} returned {value}; scores must be within [0, 1]")
        return Score(value=value, explanation=str(explanation))
    raise ScorerError(
        f"scorer {where} returned {type(result).__name__}; return a Score, a float in [0, 1] "
        "or a (float, explanation) tuple"
    )


def _accepted_kwargs(fn: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return params
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return params
    return {k: v for k, v in params.items() if k in sig.parameters}


def _wrap_user(fn: Callable[..., Any]) -> Callable[..., Score]:
    where = getattr(fn, "__qualname__", repr(fn))

    def scorer(answer: str, task: LabelledTask, **params: Any) -> Score:
        return _to_score(fn(answer, task, **_accepted_kwargs(fn, params)), where)

    scorer.__name__ = f"user:{where}"
    scorer.__wrapped__ = fn  # type: ignore[attr-defined]
    return scorer


def resolve_callable(ref: str, *, base_dir: Path | None = None) -> Callable[..., Any]:
    """``"pkg.module:function"`` or ``"relative/file.py:function"`` (relative to ``base_dir``)."""
    module_ref, _, attr = ref.rpartition(":")
    if not module_ref or not attr:
        raise ScorerError(f"bad scorer reference {ref!r}; use 'module:function'")
    if module_ref.endswith(".py"):
        path = Path(module_ref)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ScorerError(f"scorer file {path} not found (from {ref!r})")
        mod_name = f"_harnessopt_user_scorer_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise ScorerError(f"cannot import scorer module {module_ref!r} ({exc}); is it on sys.path?") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ScorerError(f"scorer {ref!r}: {module_ref} has no function {attr!r}")
    return fn


# --------------------------------------------------------------------------- exact matches


@register("exact")
def exact(answer: str, task: LabelledTask, **_: Any) -> Score:
    """Equal after stripping surrounding whitespace (case and punctuation matter)."""
    got, want = str(answer).strip(), task.target.strip()
    if got == want:
        return Score(value=1.0, explanation="exact match")
    return Score(value=0.0, explanation=f"expected {want!r}, got {_short(got)!r}")


@register("normalized_exact")
def normalized_exact(answer: str, task: LabelledTask, **_: Any) -> Score:
    """Equal after :func:`normalize_text` (case, whitespace and punctuation ignored)."""
    got, want = normalize_text(answer), normalize_text(task.target)
    if got == want:
        return Score(value=1.0, explanation="match after normalisation")
    return Score(value=0.0, explanation=f"expected {want!r}, got {_short(got)!r} (normalised)")


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# --------------------------------------------------------------------------- numbers

_NUM = re.compile(
    r"(?P<sign>[-\u2212])?\s?\$?\s?"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?"
)
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_HASHES = re.compile(r"####\s*(.+)")


def _numbers(text: str) -> list[tuple[float, str]]:
    found = []
    for m in _NUM.finditer(text):
        start = m.start()
        sign = m.group("sign")
        # A minus is a sign only when not glued to a word or number before it ("3-4", "x-2").
        if sign and start > 0 and (text[start - 1].isalnum() or text[start - 1] in ")]"):
            sign = None
        try:
            value = float(m.group("num").replace(",", ""))
            if m.group("den"):
                den = float(m.group("den"))
                if den == 0:
                    continue
                value /= den
        except ValueError:
            continue
        if sign:
            value = -value
        found.append((value, m.group(0).strip()))
    return found


def extract_number(text: str) -> tuple[float, str, str] | None:
    """The final number of an answer as ``(value, matched_text, rule)``, or None.

    Rules, first that applies: the text after the last ``####``; the last ``\\boxed{...}``;
    the last number anywhere. Handles ``$1,234.50``, negatives, decimals, ``3/4``.
    """
    text = str(text)
    hashes = _HASHES.findall(text)
    if hashes:
        nums = _numbers(hashes[-1])
        if nums:
            return nums[0][0], nums[0][1], "after ####"
    boxed = _BOXED.findall(text)
    if boxed:
        nums = _numbers(boxed[-1])
        if nums:
            return nums[-1][0], nums[-1][1], "in \\boxed{}"
    nums = _numbers(text)
    if nums:
        return nums[-1][0], nums[-1][1], "last number"
    return None


def _fmt(x: float) -> str:
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else repr(x)


@register("numeric")
def numeric(answer: str, task: LabelledTask, *, abs_tol: float = 1e-6, rel_tol: float = 1e-9, **_: Any) -> Score:
    """GSM8K-style: the answer's final number equals the target's within tolerance."""
    want = extract_number(task.target)
    if want is None:
        return Score(value=0.0, explanation=f"target {task.target!r} holds no number")
    got = extract_number(answer)
    if got is None:
        return Score(value=0.0, explanation=f"no number in answer; expected {_fmt(want[0])}")
    ok = math.isclose(got[0], want[0], rel_tol=rel_tol, abs_tol=abs_tol)
    verdict = "correct" if ok else f"wrong, expected {_fmt(want[0])}"
    return Score(value=1.0 if ok else 0.0, explanation=f"extracted {_fmt(got[0])} ({got[2]}: {got[1]!r}); {verdict}")


# --------------------------------------------------------------------------- labels


def match_label(answer: str, labels: list[str]) -> tuple[str, str] | None:
    """Map a free-text answer to one label: ``(label, how)`` or None.

    1. the stripped answer is a label; 2. it equals a label after :func:`normalize_text`;
    3. a label occurs (as whole words, normalised) in the answer's first non-empty line: the
    earliest occurrence wins, the longest label on ties.
    """
    text = str(answer).strip()
    if text in labels:
        return text, "exact"
    norm = {normalize_text(lab): lab for lab in reversed(labels)}
    n_ans = normalize_text(text)
    if n_ans in norm:
        return norm[n_ans], "normalised"
    first = next((line for line in text.splitlines() if line.strip()), "")
    line = f" {normalize_text(first)} "
    best: tuple[int, int, str] | None = None
    for n_lab, lab in norm.items():
        if not n_lab:
            continue
        pos = line.find(f" {n_lab} ")
        if pos >= 0:
            key = (pos, -len(n_lab), lab)
            if best is None or key < best:
                best = key
    if best is not None:
        return best[2], "in first line"
    return None


@register("label")
def label(answer: str, task: LabelledTask, *, labels: list[str] | None = None, **_: Any) -> Score:
    """Classification: match the answer to the label set, then compare with the target."""
    label_set = list(labels) if labels else [task.target]
    found = match_label(answer, label_set)
    if found is None:
        return Score(value=0.0, explanation=f"no label in answer {_short(str(answer).strip())!r}; expected {task.target!r}")
    lab, how = found
    if lab == task.target:
        return Score(value=1.0, explanation=f"matched label {lab!r} ({how})")
    return Score(value=0.0, explanation=f"matched label {lab!r} ({how}); expected {task.target!r}")


# --------------------------------------------------------------------------- code

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)


def _strip_fences(answer: str) -> str:
    m = _FENCE.search(answer)
    return m.group(1) if m else answer


def _import_lines(prompt: str) -> str:
    return "\n".join(
        line for line in prompt.splitlines() if re.match(r"\s*(import\s|from\s+\S+\s+import\s)", line) and not line.startswith((" ", "\t"))
    )


def build_humaneval_program(prompt: str, answer: str, test: str, entry_point: str) -> str:
    """The program that checks one HumanEval answer.

    If the answer defines ``entry_point`` itself, it is placed after the prompt (a prompt ends
    with a docstring, which is a valid function body, so the answer's definition overrides it and
    helpers defined in the prompt stay available); if the prompt does not compile alone, only its
    import lines are kept. Otherwise the answer is a completion appended to the prompt.
    """
    code = _strip_fences(str(answer))
    if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M):
        try:
            compile(prompt, "<prompt>", "exec")
            head = prompt
        except SyntaxError:
            head = _import_lines(prompt)
        program = f"{head}\n\n{code}"
    else:
        program = prompt + code
    return f"{program}\n\n{test}\n\ncheck({entry_point})\n"


def _tail(text: str, lines: int = 6, chars: int = 600) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    out = " | ".join(s.strip() for s in kept)
    return out if len(out) <= chars else "..." + out[-chars:]


@register("python_tests")
def python_tests(
    answer: str,
    task: LabelledTask,
    *,
    hidden: dict[str, Any] | None = None,
    test_field: str = "test",
    prompt_field: str = "prompt",
    entry_point_field: str = "entry_point",
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    **_: Any,
) -> Score:
    """HumanEval-style: run prompt + answer + tests + ``check(entry_point)`` in the sandbox."""
    from harnessopt.sandbox import run_python

    hidden = hidden or {}
    test = hidden.get(test_field, task.extra.get(test_field))
    if not test:
        return Score(value=0.0, explanation=f"task {task.id} has no {test_field!r} field to run")
    prompt = str(hidden.get(prompt_field, task.extra.get(prompt_field, task.input)))
    entry = hidden.get(entry_point_field, task.extra.get(entry_point_field))
    if not entry:
        return Score(value=0.0, explanation=f"task {task.id} has no {entry_point_field!r} field")
    program = build_humaneval_program(prompt, str(answer), str(test), str(entry))
    res = run_python(program, timeout_s=timeout_s, memory_mb=memory_mb)
    if res.timed_out:
        return Score(value=0.0, explanation=f"timed out after {timeout_s:g}s")
    if res.exit_code == 0:
        return Score(value=1.0, explanation="all tests passed")
    detail = _tail(res.stderr) or _tail(res.stdout) or "no output"
    return Score(value=0.0, explanation=f"tests failed (exit {res.exit_code}): {detail}")


# --------------------------------------------------------------------------- user functions


@register("callable")
def callable_scorer(answer: str, task: LabelledTask, *, function: Any = None, base_dir: Any = None, **params: Any) -> Score:
    """Delegate to a user function (``function="module:function"`` or a Python callable)."""
    if function is None:
        raise ScorerError("scorer 'callable' needs params.function = 'module:function'")
    fn = function if callable(function) else resolve_callable(str(function), base_dir=Path(base_dir) if base_dir else None)
    return _wrap_user(fn)(answer, task, **params)


from harnessopt import workspace_scorer as _workspace_scorer  # noqa: E402,F401 - registers "workspace"
