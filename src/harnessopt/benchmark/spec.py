"""A benchmark spec: the TOML file's schema, reading it, and finding specs by name.

Specs live in `benchmark_specs/` folders (see `benchmark_dirs`); docs/BENCHMARKS.md describes
every field.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harnessopt.errors import UserError
from harnessopt.records import SplitName

SPLITS: tuple[SplitName, ...] = ("train", "search", "test")
ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
SPECS_DIR = "benchmark_specs"  # folder name of spec files (a project's own, the bundled and the repo's)


class BenchmarkError(UserError, ValueError):
    """A benchmark could not be found, parsed or loaded. The message is one line with the fix."""


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
    # Agentic benchmarks: the column holding each task's file tree (a list of {path, content}
    # records or a {path: content} object), written into the rollout's scratch directory.
    workspace: str | None = None

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
    task_shape: Literal["classification", "short_answer", "math", "code", "agent"] = "short_answer"
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
        if not v or ID_UNSAFE.search(v):
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
    """Folders searched for `<name>.toml`, in order: ./benchmark_specs, the wheel's bundled copy,
    the repository's top-level benchmark_specs/ (editable installs)."""
    here = Path(__file__).resolve()
    package, repo = here.parents[1], here.parents[3]
    dirs = [Path.cwd() / SPECS_DIR, package / "_bundled" / SPECS_DIR, repo / SPECS_DIR]
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
    old_place = Path.cwd() / "benchmarks" / f"{text}.toml"
    if old_place.is_file():  # the folder's name before it was benchmark_specs/
        raise BenchmarkError(f"unknown benchmark {text!r}: specs are looked up in ./{SPECS_DIR}/, not ./benchmarks/; "
                             f"move {old_place.name} there or pass the path benchmarks/{old_place.name}")
    raise BenchmarkError(
        f"unknown benchmark {text!r}; known: {', '.join(known_benchmarks()) or '(none)'} "
        "(or pass a path to a .toml spec)"
    )
