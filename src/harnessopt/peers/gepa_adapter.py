"""A GEPA adapter over harnessopt: GEPA evolves one prompt string of a seed harness.

- The component GEPA optimizes is a module-level string constant of the seed harness (its prompt
  template, e.g. `PROMPT`); each candidate text becomes a harness file with that constant
  replaced, registered as a candidate of the run (`c0001`, ...; identical texts share one id).
- `evaluate` runs the batch through harnessopt's `Evaluator`: the same task model, sandboxed
  workers, rollout cache (a rollout already run is reused, never paid again) and ledger rows
  (`full` when the batch is the whole search split, `spot` for GEPA's minibatches).
- GEPA's metric is STRICT: for a label benchmark an answer scores 1 only when, ignoring case and
  punctuation, it IS the target label (GEPA's default counts a label contained anywhere, which a
  reply listing every label games); other benchmarks use their own scorer. The held-out test is
  scored by the benchmark's scorer, like every other arm.
- The reflection model is called through harnessopt's gateway (`ReflectionModel`), each reply
  cached under the run's meta_cache by its exact request, so a rerun makes no model call.

GEPA is synchronous and runs in a worker thread; evaluations and model calls are sent back to
the event loop that owns the evaluator and the gateway.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

from harnessopt.errors import UsageError
from harnessopt.harness import HarnessFile, harness_from_source, source_hash
from harnessopt.llm import CallRequest, metered_call
from harnessopt.records import LabelledTask, ModelParams, RolloutTrace, Usage
from harnessopt.scorers import normalize_text

REFLECTION_TEMPLATE = Path(__file__).parent / "prompts" / "gepa_reflection.txt"


# --------------------------------------------------------------------------- the prompt component


def prompt_constant(source: str, name: str | None = None) -> tuple[str, str]:
    """(name, text) of the module-level string constant GEPA optimizes: `name`, or the first
    upper-case one holding a jinja placeholder (`{{`), or else the first upper-case string."""
    found = _string_constants(source)
    if name is not None:
        if name not in found:
            raise UsageError(f"the seed harness has no module-level string constant {name!r} (has: "
                             f"{', '.join(found) or 'none'}); pass --component with one of them")
        return name, found[name][0]
    upper = [n for n in found if n.isupper()]
    pick = next((n for n in upper if "{{" in found[n][0]), upper[0] if upper else None)
    if pick is None:
        raise UsageError("the seed harness has no upper-case module-level string constant (a prompt template) "
                         "for GEPA to optimize; give it one, e.g. PROMPT = \"...{{ task.input }}...\"")
    return pick, found[pick][0]


def with_prompt(source: str, name: str, text: str) -> str:
    """The harness source with constant `name` set to `text` (everything else unchanged)."""
    _, node = _string_constants(source)[name]
    lines = source.splitlines(keepends=True)
    start = sum(len(line) for line in lines[:node.lineno - 1]) + node.col_offset
    end = sum(len(line) for line in lines[:node.end_lineno - 1]) + node.end_col_offset
    return source[:start] + _literal(text) + source[end:]


def _string_constants(source: str) -> dict[str, tuple[str, ast.expr]]:
    out: dict[str, tuple[str, ast.expr]] = {}
    for stmt in ast.parse(source).body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
            out.setdefault(stmt.targets[0].id, (stmt.value.value, stmt.value))
    return out


def _literal(text: str) -> str:
    """A readable triple-quoted literal when it round-trips, else repr (always valid Python)."""
    candidate = '"""' + text + '"""'
    try:
        if "\\" not in text and ast.literal_eval(candidate) == text:
            return candidate
    except (SyntaxError, ValueError):
        pass
    return repr(text)


# --------------------------------------------------------------------------- the strict metric


def strict_score(trace: RolloutTrace, task: LabelledTask, labels: list[str] | None) -> float:
    """1.0 only for an answer that is the target label (case and punctuation ignored) on a label
    benchmark; elsewhere the benchmark scorer's verdict."""
    if not labels:
        return trace.score
    answer = normalize_text(trace.answer or "")
    return 1.0 if answer and answer == normalize_text(task.target) else 0.0


# --------------------------------------------------------------------------- the adapter


class HarnessPromptAdapter:
    """GEPA's adapter protocol (evaluate, make_reflective_dataset) over a harnessopt run."""

    propose_new_texts = None  # GEPA's own reflective proposer writes the new texts

    def __init__(self, *, seed_source: str, component: str, workbench: Any, loop: asyncio.AbstractEventLoop):
        """`workbench`: a GepaBench (gepa_run.py) holding the evaluator, store, benchmark and counts."""
        self.seed_source = seed_source
        self.component = component
        self.wb = workbench
        self.loop = loop
        self.ids: dict[str, str] = {}  # harness hash -> candidate id
        self.harnesses: dict[str, HarnessFile] = {}
        self.last_traced: str | None = None  # the candidate GEPA last evaluated for reflection
        self.parent_of_next: str | None = None

    # GEPA calls these from its thread.
    def evaluate(self, batch: list[LabelledTask], candidate: dict[str, str], capture_traces: bool = False) -> Any:
        from gepa.core.adapter import EvaluationBatch

        harness, cid = self.candidate(candidate[self.component])
        traces = asyncio.run_coroutine_threadsafe(self.wb.run_batch(harness, cid, batch), self.loop).result()
        by_task = {t.task_id: t for t in traces}
        outputs, scores, trajectories = [], [], []
        for task in batch:
            trace = by_task.get(task.id)
            score = strict_score(trace, task, self.wb.bench.labels) if trace is not None else 0.0
            outputs.append(trace.answer if trace is not None else None)
            scores.append(score)
            trajectories.append({"task": task, "trace": trace, "score": score})
        if capture_traces:
            self.last_traced = cid
        return EvaluationBatch(outputs=outputs, scores=scores, trajectories=trajectories if capture_traces else None)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: Any,
                                components_to_update: list[str]) -> dict[str, list[dict[str, Any]]]:
        self.parent_of_next = self.last_traced  # the text GEPA now reflects on is the next one's parent
        records = [_feedback_record(t["task"], t["trace"], t["score"]) for t in eval_batch.trajectories or []]
        return {name: records for name in components_to_update}

    def candidate(self, text: str) -> tuple[HarnessFile, str]:
        """The harness for a candidate text, registered once per distinct code."""
        seed_text = _string_constants(self.seed_source)[self.component][0]
        source = self.seed_source if text == seed_text else with_prompt(self.seed_source, self.component, text)
        digest = source_hash(source)
        if digest not in self.ids:
            cid = f"c{len(self.ids):04d}"
            first = not self.ids
            harness = harness_from_source(source, str(self.wb.store.harness_path(cid)))
            if not self.wb.store.has_candidate(cid):  # a rerun finds it stored already
                self.wb.evaluator.register_candidate(
                    harness, cid, parent=None if first else (self.parent_of_next or "c0000"),
                    hypothesis="seed harness" if first else f"GEPA reflection on {self.component}",
                    origin="seed" if first else "gepa")
            self.ids[digest], self.harnesses[digest] = cid, harness
        return self.harnesses[digest], self.ids[digest]


def _feedback_record(task: LabelledTask, trace: RolloutTrace | None, score: float) -> dict[str, Any]:
    if trace is None:
        return {"Inputs": task.input, "Generated Outputs": "(no rollout)", "Feedback": "The rollout did not run."}
    said = trace.answer if trace.answer is not None else f"(no answer: {trace.error.type if trace.error else 'error'})"
    verdict = "Correct." if score >= 1.0 else f"Incorrect. The correct answer is {task.target!r}."
    if trace.error is not None:
        verdict += f" Error: {trace.error.type}: {' '.join(trace.error.message.split())[:300]}"
    return {"Inputs": task.input, "Generated Outputs": said, "Feedback": verdict}


# --------------------------------------------------------------------------- the reflection model


class ReflectionModel:
    """GEPA's `reflection_lm` (prompt -> text): the meta model through harnessopt's gateway, each
    reply cached in the run's meta_cache by its exact request (a rerun makes no call)."""

    def __init__(self, *, gateway: Any, model: str, params: ModelParams, store: Any, loop: asyncio.AbstractEventLoop,
                 on_reply: Any = None):
        self.gateway, self.model, self.params, self.store, self.loop = gateway, model, params, store, loop
        self.usage = Usage()  # tokens of every reply this run used (cached ones too: the run's own spend)
        self.calls = 0
        self.on_reply = on_reply

    def __call__(self, prompt: str | list[dict[str, Any]]) -> str:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        request = CallRequest(kind="chat", model=self.model, messages=messages, params=self.params)
        return asyncio.run_coroutine_threadsafe(self._call(request), self.loop).result()

    async def _call(self, request: CallRequest) -> str:
        response = await metered_call(self.gateway, request, side="meta", cache=self.store.meta_cache())
        self.calls += 1
        self.usage.calls += 1
        self.usage.prompt_tokens += response.prompt_tokens
        self.usage.completion_tokens += response.completion_tokens
        self.usage.cost_usd += response.cost_usd
        if self.on_reply is not None:  # on the event loop, like every other write to the run directory
            self.on_reply(response)
        return response.text


def reflection_template() -> str:
    return REFLECTION_TEMPLATE.read_text(encoding="utf-8")
