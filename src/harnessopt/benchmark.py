"""Benchmarks: a TOML spec, tasks loaded with `datasets`, seeded splits and a scorer.

A spec (see docs/BENCHMARKS.md) says where the data comes from (a hub id and/or local files),
which columns make a task (input, target, id, extra fields the harness may see, hidden fields only
the scorer sees), the label set, how the source splits map onto harnessopt's three splits
(``train`` — labelled examples harnesses may read; ``search`` — what the optimizer scores
candidates on; ``test`` — held out, evaluated once at the end) and which scorer to use.

    bench = load_benchmark("banking77", data="../shared/data/banking77")
    bench.tasks("test", limit=100)     # seeded shuffle, so a prefix mixes labels
    bench.score(task, "card_arrival")  # -> Score

Everything here is deterministic for a given (spec, data, seed): carve-outs, task order, ids and
the fingerprint. Nothing is cached on disk beyond what `datasets` caches itself.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import random
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harnessopt.records import Example, LabelledTask, Score, SplitName
from harnessopt.scorers import ScorerError, get_scorer, resolve_callable

__all__ = [
    "Benchmark",
    "BenchmarkError",
    "BenchmarkSpec",
    "SourceSpec",
    "FieldsSpec",
    "LabelsSpec",
    "SplitRef",
    "ScorerSpec",
    "load_benchmark",
    "load_spec",
    "known_benchmarks",
    "resolve_spec_path",
    "benchmark_dirs",
]

SPLITS: tuple[SplitName, ...] = ("train", "search", "test")
FORMATS = ("csv", "jsonl", "json", "parquet")
_EXT_FORMAT = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_JINJA_VAR = re.compile(r"\{\{|\{%")
_FORMAT_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class BenchmarkError(ValueError):
    """A benchmark could not be found, parsed or loaded. The message is one line with the fix."""


# --------------------------------------------------------------------------- the spec


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SourceSpec(_Spec):
    """Where rows come from. Local files win when they exist; otherwise the hub id is used."""

    hub: str | None = None
    hub_config: str | None = None
    revision: str | None = None
    # Column renames applied to hub data, to match the local files' column names.
    rename: dict[str, str] = Field(default_factory=dict)
    # Local files per source split, relative to `data_dir` (itself relative to the spec file).
    # A path may start with `pkg:<package>/` to point inside an installed Python package.
    data_dir: str | None = None
    files: dict[str, str | list[str]] = Field(default_factory=dict)
    format: Literal["csv", "jsonl", "json", "parquet"] | None = None


class FieldsSpec(_Spec):
    """Column mapping. `input` and `target` are a column name or a template over columns
    (jinja2 `{{ col }}` or format-style `{col}`)."""

    input: str = "input"
    target: str = "target"
    # Regex applied to the target text; group 1 (or the whole match) becomes the target.
    target_regex: str | None = None
    # Id column; when absent, stable ids `<name>-<source split>-<row:05d>` are generated.
    id: str | None = None
    # Columns the harness sees in Task.extra (and Example.extra).
    extra: list[str] = Field(default_factory=list)
    # Columns only the scorer sees (passed as `hidden=`); never in Task.extra or Example.extra.
    hidden: list[str] = Field(default_factory=list)
    # Columns shown only on train-split examples (e.g. GSM8K worked solutions), never on tasks.
    example_extra: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> FieldsSpec:
        for a, b in (("extra", "hidden"), ("extra", "example_extra")):
            both = set(getattr(self, a)) & set(getattr(self, b))
            if both:
                raise ValueError(f"columns {sorted(both)} are in both fields.{a} and fields.{b}")
        return self


class LabelsSpec(_Spec):
    """`from = "file"` reads a JSON list (falling back to the hub's class names, then to the
    train targets, when the file is absent); `"targets"` uses the sorted set of train+search
    targets; `"none"` means no label set. Default: targets for classification, else none."""

    from_: Literal["file", "targets", "none"] | None = Field(default=None, alias="from")
    file: str | None = None

    @model_validator(mode="after")
    def _file_given(self) -> LabelsSpec:
        if self.file and self.from_ is None:
            self.from_ = "file"
        if self.from_ == "file" and not self.file:
            raise ValueError('labels.from = "file" needs labels.file = "name.json"')
        return self


class SplitRef(_Spec):
    """A carve-out: `n` items (or a `fraction`) sampled with a seed from source split `from`."""

    from_: str = Field(alias="from")
    n: int | None = Field(default=None, ge=0)
    fraction: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_size(self) -> SplitRef:
        if (self.n is None) == (self.fraction is None):
            raise ValueError(f"split carved from {self.from_!r} needs exactly one of n or fraction")
        return self

    def size(self, available: int) -> int:
        return self.n if self.n is not None else round(self.fraction * available)  # type: ignore[operator]


class ScorerSpec(_Spec):
    name: str = "exact"
    params: dict[str, Any] = Field(default_factory=dict)


def _default_splits() -> dict[str, str | SplitRef]:
    return {"train": "train", "search": SplitRef(**{"from": "train", "n": 200}), "test": "test"}


class BenchmarkSpec(_Spec):
    """A benchmark definition, normally read from a TOML file with :func:`load_spec`."""

    name: str
    description: str = ""
    task_shape: Literal["classification", "short_answer", "math", "code"] = "short_answer"
    source: SourceSpec = Field(default_factory=SourceSpec)
    fields: FieldsSpec = Field(default_factory=FieldsSpec)
    labels: LabelsSpec = Field(default_factory=LabelsSpec)
    # Plan split -> a source split name (all of it, or what is left after carve-outs) or a carve-out.
    splits: dict[SplitName, str | SplitRef] = Field(default_factory=_default_splits)
    scorer: ScorerSpec = Field(default_factory=ScorerSpec)
    # Where the spec was read from (relative paths resolve against its folder); not part of TOML.
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v or _ID_UNSAFE.search(v):
            raise ValueError(f"name {v!r} must be non-empty and use only letters, digits, '.', '_', '-'")
        return v

    @model_validator(mode="after")
    def _plan_ok(self) -> BenchmarkSpec:
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"splits must define train, search and test (missing: {', '.join(missing)})")
        whole: dict[str, str] = {}
        for split, ref in self.splits.items():
            if isinstance(ref, str):
                if ref in whole:
                    raise ValueError(
                        f"splits.{whole[ref]} and splits.{split} both take all of source split {ref!r}; "
                        f"carve one of them with {{from = {ref!r}, n = ...}}"
                    )
                whole[ref] = split
        return self

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def source_splits(self) -> list[str]:
        """Source split names the plan uses, in first-use order."""
        out: list[str] = []
        for ref in self.splits.values():
            name = ref if isinstance(ref, str) else ref.from_
            if name not in out:
                out.append(name)
        return out

    def task_fields(self) -> dict[str, Any]:
        """What defines the tasks and their scoring (for fingerprints): not name/description."""
        return self.model_dump(mode="json", by_alias=True, include={"fields", "labels", "splits", "scorer", "task_shape"})


def load_spec(path: str | Path) -> BenchmarkSpec:
    """Read and validate one TOML spec; errors name the file and the offending field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchmarkError(f"benchmark spec {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchmarkError(f"{path}: invalid TOML ({exc})") from None
    try:
        spec = BenchmarkSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BenchmarkError(f"{path}: field {loc}: {err['msg']}{more}") from None
    spec.path = path.resolve()
    return spec


# --------------------------------------------------------------------------- finding specs


def benchmark_dirs() -> list[Path]:
    """Folders searched for `<name>.toml`, in order: ./benchmarks, the wheel's bundled copy,
    the repository's top-level benchmarks/ (editable installs)."""
    here = Path(__file__).resolve()
    dirs = [Path.cwd() / "benchmarks", here.parent / "_bundled" / "benchmarks", here.parents[2] / "benchmarks"]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def known_benchmarks() -> list[str]:
    return sorted({p.stem for d in benchmark_dirs() for p in d.glob("*.toml")})


def resolve_spec_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    p = Path(text).expanduser()
    if p.suffix == ".toml" or p.is_file() or "/" in text or "\\" in text:
        if p.is_dir() and len(list(p.glob("*.toml"))) == 1:
            return next(p.glob("*.toml"))
        if not p.is_file():
            raise BenchmarkError(f"benchmark spec {p} not found; give a .toml file or one of: {', '.join(known_benchmarks()) or '(none)'}")
        return p
    for d in benchmark_dirs():
        cand = d / f"{text}.toml"
        if cand.is_file():
            return cand
    raise BenchmarkError(
        f"unknown benchmark {text!r}; known: {', '.join(known_benchmarks()) or '(none)'} "
        "(or pass a path to a .toml spec)"
    )


# --------------------------------------------------------------------------- loading rows


def _one_line(exc: BaseException, limit: int = 160) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    msg = f"{type(exc).__name__}: {msg}"
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _resolve_local(ref: str, base: Path) -> Path:
    if ref.startswith("pkg:"):
        pkg, _, rest = ref[4:].partition("/")
        try:
            found = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            return Path(f"<package {pkg} not installed>") / rest
        return Path(list(found.submodule_search_locations)[0]) / rest
    p = Path(ref).expanduser()
    return p if p.is_absolute() else base / p


def _format_of(paths: list[Path], declared: str | None) -> str:
    if declared:
        return declared
    name = paths[0].name.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        name = name.removesuffix(suffix)
    fmt = _EXT_FORMAT.get(Path(name).suffix)
    if fmt is None:
        raise BenchmarkError(f"cannot tell the format of {paths[0]}; set source.format to one of {', '.join(FORMATS)}")
    return fmt


def _default_names(split: str, spec: BenchmarkSpec) -> list[str]:
    names = spec.source.files.get(split)
    if names:
        return [Path(n.split("/", 1)[1] if n.startswith("pkg:") else n).name for n in ([names] if isinstance(names, str) else names)]
    exts = [spec.source.format] if spec.source.format else ["csv", "jsonl", "json", "parquet", "jsonl.gz"]
    return [f"{split}.{e}" for e in exts]


class _Loaded:
    """Rows of each source split as column dicts, plus where they came from."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = {}
        self.where: dict[str, str] = {}  # source split -> file(s) or hub id, for messages
        self.class_names: dict[str, list[str]] = {}  # column -> ClassLabel names (hub)
        self.data_dir: Path | None = None


def _datasets():
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - dependency
        raise BenchmarkError(f"the 'datasets' package is needed to load benchmarks ({exc}); pip install datasets") from None
    return datasets


def _quiet(fn: Callable[[], Any]) -> Any:
    datasets = _datasets()
    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return fn()
    finally:
        if was:
            datasets.enable_progress_bars()


def _load_files(files: dict[str, list[Path]], declared_format: str | None, out: _Loaded) -> None:
    datasets = _datasets()
    for split, paths in files.items():
        for p in paths:
            if not p.is_file():
                raise BenchmarkError(f"data file {p} (source split {split!r}) not found")
        out.where[split] = ", ".join(str(p) for p in paths)
    for split, paths in files.items():
        fmt = _format_of(paths, declared_format)
        builder = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}[fmt]
        kwargs: dict[str, Any] = {}
        if fmt == "csv":
            sep = "\t" if paths[0].suffix.lower() == ".tsv" or paths[0].name.lower().endswith(".tsv.gz") else ","
            # Keep every cell as text: "007" stays "007", "NA" stays "NA", labels "1" stay strings.
            kwargs.update(sep=sep, keep_default_na=False, features=_string_features(paths[0], sep))
        # One split per call (splits may differ in columns); "train" is only datasets' internal
        # name here, since a source split may be called anything, even datasets' reserved "all".
        try:
            ds = _quiet(lambda: datasets.load_dataset(builder, data_files={"train": [str(p) for p in paths]}, split="train", **kwargs))
        except BenchmarkError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser error becomes one line naming the file
            raise BenchmarkError(f"could not read {out.where[split]} as {fmt} ({_one_line(exc)})") from None
        out.columns[split] = ds.to_dict()


def _string_features(path: Path, sep: str):
    import csv
    import gzip

    from datasets import Features, Value

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:  # type: ignore[operator]
            header = next(csv.reader(fh, delimiter=sep), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchmarkError(f"could not read the header of {path} ({_one_line(exc)})") from None
    if not header:
        raise BenchmarkError(f"{path} is empty; a CSV needs a header row")
    return Features({name: Value("string") for name in header})


def _load_hub(spec: BenchmarkSpec, out: _Loaded) -> None:
    datasets = _datasets()
    src = spec.source
    hint = ", ".join(f"{n}" for s in spec.source_splits() for n in _default_names(s, spec)[:1])
    try:
        dd = _quiet(lambda: datasets.load_dataset(src.hub, src.hub_config, revision=src.revision))
    except Exception as exc:  # noqa: BLE001
        raise BenchmarkError(
            f"could not load {src.hub} from the hub ({_one_line(exc, 120)}); "
            f"pass --data DIR pointing at local {hint.replace(', ', '/')}"
        ) from None
    for split in spec.source_splits():
        if split not in dd:
            raise BenchmarkError(f"{src.hub} has no split {split!r} (it has: {', '.join(dd)}); fix [splits] in {spec.path or spec.name}")
        ds = dd[split]
        cols = ds.to_dict()
        for col, feat in ds.features.items():
            if type(feat).__name__ == "ClassLabel":
                out.class_names[src.rename.get(col, col)] = list(feat.names)
                cols[col] = [feat.int2str(v) if isinstance(v, int) and v >= 0 else v for v in cols[col]]
        out.columns[split] = {src.rename.get(c, c): v for c, v in cols.items()}
        out.where[split] = f"{src.hub} (hub split {split!r})"


def _load_rows(spec: BenchmarkSpec, data: str | Path | None) -> _Loaded:
    out = _Loaded()
    needed = spec.source_splits()
    if data is not None:
        data = Path(data).expanduser()
        if data.is_file():
            if len(needed) != 1:
                raise BenchmarkError(
                    f"--data {data} is one file but {spec.name} reads source splits {', '.join(needed)}; "
                    "pass a directory holding one file per split"
                )
            files = {needed[0]: [data]}
            out.data_dir = data.parent
        elif data.is_dir():
            files = {}
            for split in needed:
                names = _default_names(split, spec)
                hits = [data / n for n in names if (data / n).is_file()]
                if not hits:
                    raise BenchmarkError(f"no file for source split {split!r} in {data} (looked for {', '.join(names)})")
                files[split] = hits if spec.source.files.get(split) else hits[:1]
            out.data_dir = data
        else:
            raise BenchmarkError(f"--data {data} does not exist")
        _load_files(files, spec.source.format, out)
        return out
    src = spec.source
    base = spec.base_dir / (src.data_dir or ".")
    if src.files:
        missing = [s for s in needed if s not in src.files]
        if missing and not src.hub:
            raise BenchmarkError(f"{spec.path or spec.name}: source.files has no entry for source split(s) {', '.join(missing)}")
        files = {s: [_resolve_local(r, base) for r in ([src.files[s]] if isinstance(src.files[s], str) else src.files[s])] for s in needed if s in src.files}
        if not missing and all(p.is_file() for ps in files.values() for p in ps):
            out.data_dir = base if src.data_dir else next(iter(files.values()))[0].parent
            _load_files(files, src.format, out)
            return out
        if not src.hub:
            absent = next(p for ps in files.values() for p in ps if not p.is_file())
            raise BenchmarkError(f"data file {absent} not found; pass --data DIR or fix source.files in {spec.path or spec.name}")
    if src.hub:
        _load_hub(spec, out)
        return out
    raise BenchmarkError(f"{spec.path or spec.name} has no [source] hub id or files; pass --data DIR or FILE")


# --------------------------------------------------------------------------- rows -> tasks


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
            return "" if v is None else str(v)
        vals = {c: ("" if row.get(c) is None else row[c]) for c in self.columns}
        if self.kind == "jinja":
            return self._tpl.render(**vals)
        return self.expr.format(**vals)


def _safe_id(raw: Any) -> str:
    return _ID_UNSAFE.sub("-", str(raw)).strip("-")


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


def _build(spec: BenchmarkSpec, loaded: _Loaded, seed: int):
    f = spec.fields
    inp, tgt = _Field(f.input, "input"), _Field(f.target, "target")
    roles: list[tuple[str, str]] = [(c, "fields.input") for c in inp.columns] + [(c, "fields.target") for c in tgt.columns]
    if f.id:
        roles.append((f.id, "fields.id"))
    roles += [(c, "fields.extra") for c in f.extra] + [(c, "fields.hidden") for c in f.hidden]
    roles += [(c, "fields.example_extra") for c in f.example_extra]
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
    for split in SPLITS:
        out: list[LabelledTask] = []
        for source, i in plan[split]:
            cols = loaded.columns[source]
            row = {c: v[i] for c, v in cols.items()}
            target = tgt(row)
            if regex is not None:
                m = regex.search(target)
                if m is None:
                    raise BenchmarkError(
                        f"fields.target_regex {f.target_regex!r} does not match row {i} of {loaded.where.get(source, source)} "
                        f"(target text {target[-60:]!r}); fix the regex in {spec.path.name if spec.path else spec.name}"
                    )
                target = (m.group(1) if m.groups() else m.group(0)).strip()
            tid = _safe_id(row[f.id]) if f.id else f"{spec.name}-{source}-{i:05d}"
            if not tid:
                raise BenchmarkError(f"empty id in column {f.id!r}, row {i} of {loaded.where.get(source, source)}")
            if tid in seen:
                raise BenchmarkError(
                    f"duplicate task id {tid!r} (column {f.id!r}) in {loaded.where.get(source, source)}; "
                    "ids must be unique: drop fields.id to generate them"
                )
            seen[tid] = split
            out.append(LabelledTask(id=tid, input=inp(row), target=target, extra={c: row[c] for c in f.extra}))
            if f.hidden:
                hidden[tid] = {c: row[c] for c in f.hidden}
            if f.example_extra and split == "train":
                ex_extra[tid] = {c: row[c] for c in f.example_extra}
        tasks[split] = out
    return tasks, hidden, ex_extra


def _labels(spec: BenchmarkSpec, loaded: _Loaded, tasks: dict[SplitName, list[LabelledTask]]) -> tuple[list[str] | None, str]:
    how = spec.labels.from_ or ("targets" if spec.task_shape == "classification" else "none")
    if how == "none":
        return None, "none"
    if how == "file":
        assert spec.labels.file
        for base in [loaded.data_dir, spec.base_dir / (spec.source.data_dir or "."), spec.base_dir]:
            if base is None:
                continue
            p = _resolve_local(spec.labels.file, base)
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


# --------------------------------------------------------------------------- the benchmark


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
    ) -> None:
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
        loaded = _load_rows(spec, data)
        tasks, hidden, ex_extra = _build(spec, loaded, seed)
        labels, labels_source = _labels(spec, loaded, tasks)
        return cls(
            spec, tasks, labels=labels, hidden=hidden, example_extra=ex_extra, seed=seed,
            source=loaded.where, labels_source=labels_source,
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
                    raise BenchmarkError(f"from_records({name!r}): {split}[{i}] is invalid ({_one_line(exc, 200)})") from None
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
            scorer_params=scorer_params, labels_source="given" if labels else "none",
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

    def score(self, task: LabelledTask, answer: str | None) -> Score:
        """Score one answer. Never raises for a bad answer: a scorer exception becomes a 0 with
        the exception in the explanation (configuration errors surface at load time)."""
        try:
            kwargs = {"labels": self._labels, "hidden": self._hidden.get(task.id, {}), **self._scorer_params}
            return self._scorer("" if answer is None else str(answer), task, **kwargs)
        except Exception as exc:  # noqa: BLE001
            return Score(value=0.0, explanation=f"scorer error: {_one_line(exc, 300)}")

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
                put([split, t.id, t.input, t.target, t.extra, self._hidden.get(t.id), self._example_extra.get(t.id)])
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
