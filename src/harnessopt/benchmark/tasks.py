"""Rows to tasks: the input / target / id fields, the seeded carve into train / search / test,
and the label set.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from typing import Any

from harnessopt.benchmark.sources import LoadedRows, resolve_local
from harnessopt.benchmark.spec import ID_UNSAFE, SPLITS, BenchmarkError, BenchmarkSpec, SplitRef
from harnessopt.benchmark.workspace import workspace_files
from harnessopt.records import LabelledTask, SplitName

_JINJA_VAR = re.compile(r"\{\{|\{%")
_FORMAT_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _sandboxed_env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


class _Field:
    """One of input/target: a column, a jinja2 template or a format-string template."""

    def __init__(self, expr: str, role: str) -> None:
        self.expr, self.role = expr, role
        if _JINJA_VAR.search(expr):
            from jinja2 import meta

            env = _sandboxed_env()
            self.kind = "jinja"
            self.columns = sorted(meta.find_undeclared_variables(env.parse(expr)))
            self._tpl = env.from_string(expr)
        elif _FORMAT_VAR.search(expr):
            self.kind = "format"
            self.columns = sorted(set(_FORMAT_VAR.findall(expr)))
        else:
            self.kind = "column"
            self.columns = [expr]

    def __call__(self, row: Mapping[str, Any]) -> str:
        if self.kind == "column":
            v = row[self.expr]
            if isinstance(v, (list, dict)):
                raise _CellError(f"column {self.expr!r} (fields.{self.role}) holds a {type(v).__name__}, not text; "
                                 f"render it with a template (fields.{self.role} = \"{{{{ {self.expr} | join(', ') }}}}\") "
                                 "or fix the data")
            return "" if v is None else str(v)
        vals = {c: ("" if row.get(c) is None else row[c]) for c in self.columns}
        if self.kind == "jinja":
            return self._tpl.render(**vals)
        return self.expr.format(**vals)


class _CellError(ValueError):
    """A cell that cannot become a task field; build_tasks adds the row and file."""


def _safe_id(raw: Any) -> str:
    return ID_UNSAFE.sub("-", str(raw)).strip("-")


def _carve(spec: BenchmarkSpec, sizes: dict[str, int], seed: int) -> dict[SplitName, list[tuple[str, int]]]:
    """Plan split -> [(source split, row index)], deterministic for (spec, sizes, seed)."""
    members: dict[SplitName, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for source in spec.source_splits():
        n = sizes[source]
        perm = list(range(n))
        random.Random(f"harnessopt-carve:{seed}:{source}").shuffle(perm)
        pos = 0
        # Fixed order (test, search, train) so the test carve-out does not move when the
        # search size changes; the split that takes the whole source gets what is left.
        for split in ("test", "search", "train"):
            ref = spec.splits[split]
            if isinstance(ref, SplitRef) and ref.from_ == source:
                k = ref.size(n)
                if pos + k > n:
                    raise BenchmarkError(
                        f"{spec.path or spec.name}: splits.{split} wants {k} items from source split {source!r}, "
                        f"but only {n - pos} of {n} are left; lower n"
                    )
                members[split] = sorted((source, i) for i in perm[pos : pos + k])
                pos += k
        for split in SPLITS:
            if spec.splits[split] == source:
                members[split] = sorted((source, i) for i in perm[pos:])
    for split in SPLITS:
        random.Random(f"harnessopt-order:{seed}:{split}").shuffle(members[split])
    return members


def build_tasks(spec: BenchmarkSpec, loaded: LoadedRows, seed: int):
    """(tasks per split, hidden fields, example-only fields, origins) where origins maps each
    task id to "row N of FILE" for messages."""
    f = spec.fields
    inp, tgt = _Field(f.input, "input"), _Field(f.target, "target")
    roles: list[tuple[str, str]] = [(c, "fields.input") for c in inp.columns] + [(c, "fields.target") for c in tgt.columns]
    if f.id:
        roles.append((f.id, "fields.id"))
    roles += [(c, "fields.extra") for c in f.extra] + [(c, "fields.hidden") for c in f.hidden]
    roles += [(c, "fields.example_extra") for c in f.example_extra]
    if f.workspace:
        roles.append((f.workspace, "fields.workspace"))
    regex = re.compile(f.target_regex) if f.target_regex else None
    for split, cols in loaded.columns.items():
        for col, role in roles:
            if col not in cols:
                where = loaded.where.get(split, split)
                raise BenchmarkError(
                    f"column {col!r} ({role}) not found in {where}; columns present: {', '.join(cols) or '(none)'}; "
                    f"fix {role} in {spec.path.name if spec.path else spec.name} or the data"
                )
    sizes = {s: len(next(iter(c.values()), [])) for s, c in loaded.columns.items()}
    plan = _carve(spec, sizes, seed)

    tasks: dict[SplitName, list[LabelledTask]] = {}
    hidden: dict[str, dict[str, Any]] = {}
    ex_extra: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    origins: dict[str, str] = {}
    spec_name = spec.path.name if spec.path else spec.name
    for split in SPLITS:
        out: list[LabelledTask] = []
        for source, i in plan[split]:
            cols = loaded.columns[source]
            row = {c: v[i] for c, v in cols.items()}
            where = f"row {i} of {loaded.where.get(source, source)}"
            try:
                text, target = inp(row), tgt(row)
            except _CellError as exc:
                raise BenchmarkError(f"{where}: {exc}") from None
            if regex is not None and target.strip():
                m = regex.search(target)
                if m is None:
                    raise BenchmarkError(
                        f"fields.target_regex {f.target_regex!r} does not match {where} "
                        f"(target text {target[-60:]!r}); fix the regex in {spec_name}"
                    )
                target = (m.group(1) if m.groups() else m.group(0)).strip()
            for role, value, field in (("input", text, inp), ("target", target, tgt)):
                if not value.strip():
                    column = f"column {field.expr!r}, " if field.kind == "column" else ""
                    raise BenchmarkError(
                        f"empty {role} in {where} ({column}fields.{role}): a null or missing value; fill it in or "
                        f"remove the row, or fix fields.{role} in {spec_name}"
                    )
            if f.id and isinstance(row[f.id], (list, dict)):
                raise BenchmarkError(f"{where}: column {f.id!r} (fields.id) holds a {type(row[f.id]).__name__}, "
                                     "not an id; point fields.id at a text column or drop it to generate ids")
            tid = _safe_id(row[f.id]) if f.id else f"{spec.name}-{source}-{i:05d}"
            if not tid:
                raise BenchmarkError(f"empty id in column {f.id!r}, row {i} of {loaded.where.get(source, source)}")
            if tid in seen:
                raise BenchmarkError(
                    f"duplicate task id {tid!r} (column {f.id!r}) in {loaded.where.get(source, source)}; "
                    "ids must be unique: drop fields.id to generate them"
                )
            seen[tid] = split
            origins[tid] = where
            try:
                files = workspace_files(row[f.workspace]) if f.workspace else None
            except ValueError as exc:
                raise BenchmarkError(f"{where}: column {f.workspace!r} (fields.workspace): {exc}") from None
            out.append(LabelledTask(id=tid, input=text, target=target, extra={c: row[c] for c in f.extra},
                                    workspace=files))
            if f.hidden:
                hidden[tid] = {c: row[c] for c in f.hidden}
            if f.example_extra and split == "train":
                ex_extra[tid] = {c: row[c] for c in f.example_extra}
        tasks[split] = out
    return tasks, hidden, ex_extra, origins


def label_set(spec: BenchmarkSpec, loaded: LoadedRows, tasks: dict[SplitName, list[LabelledTask]]) -> tuple[list[str] | None, str]:
    how = spec.labels.from_ or ("targets" if spec.task_shape == "classification" else "none")
    if how == "none":
        return None, "none"
    if how == "file":
        assert spec.labels.file
        for base in [loaded.data_dir, spec.base_dir / (spec.source.data_dir or "."), spec.base_dir]:
            if base is None:
                continue
            p = resolve_local(spec.labels.file, base)
            if p.is_file():
                try:
                    labels = json.loads(p.read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    raise BenchmarkError(f"labels file {p} is not valid JSON ({exc})") from None
                if isinstance(labels, dict):
                    labels = list(labels)
                if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                    raise BenchmarkError(f"labels file {p} must hold a JSON list of strings")
                return labels, f"file {p.name}"
        target_col = spec.fields.target
        if target_col in loaded.class_names:
            return list(loaded.class_names[target_col]), "hub class names"
    return sorted({t.target for s in ("train", "search") for t in tasks[s]}), "train targets"
