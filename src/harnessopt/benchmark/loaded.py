"""A loaded benchmark: tasks per split, the label set and the scorer.

    bench = load_benchmark("banking77", data="../shared/data/banking77")
    bench.tasks("test", limit=100)     # seeded shuffle, so a prefix mixes labels
    bench.score(task, "card_arrival")  # -> Score
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harnessopt.benchmark.checks import BenchmarkWarning, check_targets_in_labels, split_mix_warnings
from harnessopt.benchmark.sources import load_rows, one_line
from harnessopt.benchmark.spec import SPLITS, BenchmarkError, BenchmarkSpec, ScorerSpec, load_spec, resolve_spec_path
from harnessopt.benchmark.tasks import build_tasks, label_set
from harnessopt.records import Example, LabelledTask, Score, SplitName, WorkspaceChanges
from harnessopt.scorers import ScorerError, get_scorer, resolve_callable


class Benchmark:
    """Tasks per split, the label set and the scorer of one loaded benchmark.

    Hidden (scorer-only) fields and example-only fields stay inside this object: ``tasks()``
    returns LabelledTasks whose ``extra`` holds only the columns a harness may see.
    """

    def __init__(
        self,
        spec: BenchmarkSpec,
        tasks: Mapping[SplitName, list[LabelledTask]],
        *,
        labels: list[str] | None = None,
        hidden: Mapping[str, dict[str, Any]] | None = None,
        example_extra: Mapping[str, dict[str, Any]] | None = None,
        scorer: str | Callable[..., Any] | None = None,
        scorer_params: Mapping[str, Any] | None = None,
        seed: int = 0,
        source: Mapping[str, str] | None = None,
        labels_source: str = "",
        origins: Mapping[str, str] | None = None,
    ) -> None:
        """`origins` maps task ids to where they came from ("row 3 of test.csv"), for messages."""
        self.spec = spec
        self.name = spec.name
        self.seed = seed
        self._tasks = {s: list(tasks.get(s, [])) for s in SPLITS}
        self._by_id: dict[str, tuple[SplitName, LabelledTask]] = {}
        for split, items in self._tasks.items():
            for t in items:
                if t.id in self._by_id:
                    raise BenchmarkError(f"benchmark {self.name}: task id {t.id!r} appears twice (splits {self._by_id[t.id][0]} and {split})")
                self._by_id[t.id] = (split, t)
        self._labels = list(labels) if labels is not None else None
        self.labels_source = labels_source
        # Lopsided splits: warned about at load, kept for whoever reports on the run.
        self.data_warnings: list[str] = []
        if self._labels is not None:
            if spec.task_shape == "classification":
                check_targets_in_labels(self.name, self._tasks, self._labels, labels_source, origins or {})
            self.data_warnings = split_mix_warnings(self.name, self._tasks, self._labels, seed=seed)
            for line in self.data_warnings:
                warnings.warn(line, BenchmarkWarning, stacklevel=2)
        self._hidden = {k: dict(v) for k, v in (hidden or {}).items()}
        self._example_extra = {k: dict(v) for k, v in (example_extra or {}).items()}
        # Where each source split's rows came from (files or hub id), e.g. for run.json.
        self.source: dict[str, str] = dict(source or {})
        params = dict(spec.scorer.params if scorer_params is None else scorer_params)
        ref = spec.scorer.name if scorer is None else scorer
        try:
            if ref == "callable":
                fn = params.pop("function", None)
                if fn is None:
                    raise ScorerError("scorer 'callable' needs params.function = 'module:function'")
                ref = fn if callable(fn) else resolve_callable(str(fn), base_dir=spec.base_dir)
            self._scorer = get_scorer(ref, base_dir=spec.base_dir)
        except ScorerError as exc:
            where = f"{spec.path}: " if spec.path else ""
            raise BenchmarkError(f"{where}[scorer] {exc}") from None
        self._scorer_params = params

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_spec(cls, spec: BenchmarkSpec, *, data: str | Path | None = None, seed: int = 0) -> Benchmark:
        loaded = load_rows(spec, data)
        tasks, hidden, ex_extra, origins = build_tasks(spec, loaded, seed)
        labels, labels_source = label_set(spec, loaded, tasks)
        return cls(
            spec, tasks, labels=labels, hidden=hidden, example_extra=ex_extra, seed=seed,
            source=loaded.where, labels_source=labels_source, origins=origins,
        )

    @classmethod
    def from_records(
        cls,
        name: str,
        *,
        train: Iterable[LabelledTask | Example | Mapping[str, Any]] = (),
        search: Iterable[LabelledTask | Example | Mapping[str, Any]] = (),
        test: Iterable[LabelledTask | Example | Mapping[str, Any]] = (),
        scorer: str | Callable[..., Any] = "exact",
        scorer_params: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        hidden: Mapping[str, dict[str, Any]] | None = None,
        task_shape: str = "short_answer",
        description: str = "",
    ) -> Benchmark:
        """A benchmark from Python objects: each item a LabelledTask, an Example or a mapping with
        ``input``, ``target`` and optional ``id`` / ``extra``. Order is kept as given (no
        shuffle); missing ids become ``<name>-<split>-<index:05d>``. ``hidden`` maps task ids to
        scorer-only fields. With the ``label`` scorer and no ``labels``, the set of targets is used."""

        origins: dict[str, str] = {}

        def convert(split: str, items: Iterable[Any]) -> list[LabelledTask]:
            out = []
            for i, item in enumerate(items):
                if isinstance(item, (LabelledTask, Example)):
                    d = item.model_dump()
                elif isinstance(item, Mapping):
                    d = dict(item)
                else:
                    raise BenchmarkError(f"from_records({name!r}): {split}[{i}] is a {type(item).__name__}; give a LabelledTask, Example or dict")
                d.setdefault("id", f"{name}-{split}-{i:05d}")
                d["id"] = str(d["id"])
                try:
                    out.append(LabelledTask.model_validate(d))
                except ValidationError as exc:
                    raise BenchmarkError(f"from_records({name!r}): {split}[{i}] is invalid ({one_line(exc, 200)})") from None
                origins[d["id"]] = f"from_records item {split}[{i}]"
            return out

        tasks = {"train": convert("train", train), "search": convert("search", search), "test": convert("test", test)}
        scorer_name = scorer if isinstance(scorer, str) else "callable"
        spec = BenchmarkSpec(
            name=name, description=description, task_shape=task_shape,  # type: ignore[arg-type]
            splits={"train": "train", "search": "search", "test": "test"},
            scorer=ScorerSpec(name=scorer_name, params={k: v for k, v in (scorer_params or {}).items() if _jsonable(v)}),
        )
        if labels is None and (scorer == "label" or task_shape == "classification"):
            labels = sorted({t.target for ts in tasks.values() for t in ts})
        return cls(
            spec, tasks, labels=labels, hidden=hidden, scorer=scorer,  # type: ignore[arg-type]
            scorer_params=scorer_params, labels_source="given" if labels else "none", origins=origins,
        )

    # ---------------------------------------------------------------- access

    @property
    def labels(self) -> list[str] | None:
        return list(self._labels) if self._labels is not None else None

    def tasks(self, split: SplitName, limit: int | None = None) -> list[LabelledTask]:
        """The split's tasks in their seeded order; ``limit`` takes a prefix (a mixed sample)."""
        if split not in self._tasks:
            raise BenchmarkError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        items = self._tasks[split]
        if limit is not None:
            if limit < 0:
                raise BenchmarkError(f"limit must be >= 0, got {limit}")
            items = items[:limit]
        return [t.model_copy(deep=True) for t in items]

    def task(self, task_id: str) -> LabelledTask:
        try:
            return self._by_id[task_id][1].model_copy(deep=True)
        except KeyError:
            raise BenchmarkError(f"benchmark {self.name} has no task {task_id!r}") from None

    def split_of(self, task_id: str) -> SplitName:
        try:
            return self._by_id[task_id][0]
        except KeyError:
            raise BenchmarkError(f"benchmark {self.name} has no task {task_id!r}") from None

    def examples(self) -> list[Example]:
        """The labelled train split (what harnesses may read). Never search or test items."""
        return [
            Example(id=t.id, input=t.input, target=t.target, extra={**t.extra, **self._example_extra.get(t.id, {})})
            for t in self._tasks["train"]
        ]

    @functools.cached_property
    def example_index(self):
        """A BM25 :class:`~harnessopt.examples.ExampleIndex` over :meth:`examples` (built once)."""
        from harnessopt.examples import ExampleIndex

        return ExampleIndex(self.examples())

    def hidden_fields(self, task_id: str) -> dict[str, Any]:
        """Scorer-only fields of a task (parent side only; never hand these to a harness)."""
        return dict(self._hidden.get(task_id, {}))

    def score(self, task: LabelledTask, answer: str | None, *, workspace: WorkspaceChanges | None = None) -> Score:
        """Score one answer. Never raises for a bad answer: a scorer exception becomes a 0 with
        the exception in the explanation (configuration errors surface at load time).
        `workspace`: what the rollout changed in the task's workspace (agentic tasks); scorers
        get it as the `workspace` keyword when the task has a workspace."""
        try:
            kwargs = {"labels": self._labels, "hidden": self._hidden.get(task.id, {}), **self._scorer_params}
            if task.workspace is not None:
                kwargs["workspace"] = workspace or WorkspaceChanges()
            return self._scorer("" if answer is None else str(answer), task, **kwargs)
        except Exception as exc:  # noqa: BLE001
            problem = one_line(exc, 300)
            return Score(value=0.0, explanation=f"scorer error: {problem}", error=problem or "the scorer raised")

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex, 16 chars) of what decides tasks and scores: the spec's task fields, seed,
        labels, scorer, and every task's content (id, input, target, extra, hidden fields) per
        split, so it changes exactly when the data or its mapping does. Stable across processes."""
        h = hashlib.sha256()

        def put(obj: Any) -> None:
            h.update(json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8"))
            h.update(b"\n")

        put({"name": self.name, "spec": self.spec.task_fields(), "seed": self.seed, "labels": self._labels,
             "scorer": getattr(self._scorer, "__name__", str(self._scorer)), "params": {k: v for k, v in self._scorer_params.items() if _jsonable(v)}})
        for split in SPLITS:
            for t in self._tasks[split]:
                row = [split, t.id, t.input, t.target, t.extra, self._hidden.get(t.id), self._example_extra.get(t.id)]
                put(row + [t.workspace] if t.workspace is not None else row)  # same hash as before without one
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task_shape": self.spec.task_shape,
            "sizes": {s: len(self._tasks[s]) for s in SPLITS},
            "labels": len(self._labels) if self._labels is not None else None,
            "labels_source": self.labels_source,
            "source": self.source,
            "scorer": self.spec.scorer.name,
            "fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self._tasks[s])}" for s in SPLITS)
        return f"Benchmark({self.name!r}, {sizes})"


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def load_benchmark(name_or_path: str | Path, *, data: str | Path | None = None, seed: int = 0) -> Benchmark:
    """Load a benchmark by built-in name or spec path; ``data`` points at local files instead
    of the spec's source (a directory with one file per source split, or a single file)."""
    spec = load_spec(resolve_spec_path(name_or_path))
    return Benchmark.from_spec(spec, data=data, seed=seed)
