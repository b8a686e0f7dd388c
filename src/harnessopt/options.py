"""The options of `eval`, `optimize` and `compare`, declared once.

Each option is one pydantic field: its type, default, bounds and help text. The command line is
derived from these fields (`add_flags`), so are config files (`--config FILE.toml`, `--grid
FILE.toml`) and the Python API; all three are validated by the same model. An experiment's
`GridSpec` (comparison.py) is `RunOptions` plus its grid axes, so a new run option reaches
`optimize` and `compare` at once.

To add an option: add a field to the right class below (or to `budget.Budget`) with a
`description` (its --help text). Its flag is `--<name with dashes>`; `flag("--other")` in
`json_schema_extra` names it differently, `flag(..., negate=True)` makes a bool a `--no-...`
switch, `flag(None)` gives it no flag. Then use `config.<name>` where it matters. Nothing else.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harnessopt.budget import Budget
from harnessopt.errors import UsageError
from harnessopt.llm.registry import DEFAULT_META_MODEL, LOCAL_MODEL
from harnessopt.meta.views import FEEDBACK_MODES, FeedbackMode
from harnessopt.records import DEFAULT_MAX_TOKENS, SplitName

# Each rollout runs in a worker process; far more of them than cores only queues work and memory.
MAX_CONCURRENCY = max(32, 16 * (os.cpu_count() or 1))
EvalPolicy = Literal["meta", "ladder", "always-full"]
MenuOrder = Literal["shuffled", "digest"]
ProposalMode = Literal["compose", "rank"]
ExecutorKind = Literal["local", "ray"]
EVAL_POLICIES: tuple[str, ...] = ("meta", "ladder", "always-full")
# What providers accept (OpenAI allows 0-2; others less): outside it a call can only fail.
MAX_TEMPERATURE = 2.0


def flag(name: str | None, *, negate: bool = False) -> dict[str, Any]:
    """CLI metadata for a field: its flag name (None: no flag), and whether a bool flag turns it off."""
    return {"flag": name, "negate": negate}


class Options(BaseModel):
    """Options records: unknown keys are errors, and NaN or infinity is never a valid number."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _HarnessOption(Options):
    harness: str = Field(description="path of the harness .py file (for optimize: the seed harness)")


class RolloutOptions(Options):
    """How harnesses run on a benchmark's tasks, whichever harness runs: what `eval`, `optimize`,
    `compare` and `gate` share."""

    benchmark: str = Field(description="built-in name (home_intents, banking77, gsm8k, humaneval) or a spec .toml")
    data: str | None = Field(None, description="local data directory or file, instead of the benchmark's hub id")
    trials: int = Field(1, ge=1, description="trials of every task in every evaluation")
    concurrency: int = Field(2, ge=1, le=MAX_CONCURRENCY,
                             description=f"rollouts at once (at most {MAX_CONCURRENCY} on this machine)")
    timeout_s: float = Field(60.0, gt=0, description="wall-clock seconds per rollout", json_schema_extra=flag("--timeout"))
    temperature: float = Field(0.0, ge=0, le=MAX_TEMPERATURE, description="task model's sampling temperature")
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, description="task model's max tokens per call (a harness may set its own)")
    out: str = Field("traces", description="root folder of run directories")
    executor: ExecutorKind = Field("local", description="where rollouts run: local (worker processes on this "
                                   "machine) or ray (the same worker processes on a Ray cluster; needs the ray extra)")
    ray_address: str | None = Field(None, description="Ray cluster to use with --executor ray: auto, ray://HOST:PORT "
                                    "or HOST:PORT (default: start a Ray runtime on this machine)")
    ray_worker_cpus: float = Field(1.0, gt=0, le=64, description="CPUs Ray reserves per rollout worker (0.25 packs "
                                   "four workers per core when rollouts mostly wait on the model)")

    @field_validator("out")
    @classmethod
    def _out_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("an empty path would write into the current directory; pass a folder such as traces")
        return v

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, v: str | None) -> str | None:
        from harnessopt.executors import check_ray_address

        return None if v is None else check_ray_address(v)

    @model_validator(mode="after")
    def _ray_options_need_ray(self) -> "TaskOptions":
        if self.executor != "ray" and self.ray_address is not None:
            raise ValueError("--ray-address is used only with --executor ray; add --executor ray or drop it")
        return self


class TaskOptions(RolloutOptions, _HarnessOption):
    """What every command that runs one harness on tasks needs (the harness comes first in --help)."""


class _PerRun(Options):
    task_model: str = Field(LOCAL_MODEL, description=f"model that runs the harness: any litellm model string "
                                                     f"(default {LOCAL_MODEL}, offline)")
    seed: int = Field(0, description="seed of the benchmark's splits, the model's sampling and the meta-agent")


class _SplitSelection(Options):
    split: SplitName = Field("test", description="split to evaluate: train, search or test")
    limit: int | None = Field(None, ge=1, description="evaluate only the first N tasks of the split (seeded order)")


class EvalOptions(_SplitSelection, _PerRun, TaskOptions):
    """`eval`: one harness on one split."""


class RunOptions(TaskOptions):
    """Everything one optimize run is given except its pairing, feedback mode and seed: what every
    run of an experiment shares."""

    budget: Budget = Field(default_factory=Budget)
    search_limit: int | None = Field(None, ge=1, description="use the first N search-split tasks")
    test_limit: int | None = Field(None, ge=1, description="use the first N test-split tasks for the final evaluation")
    meta_temperature: float = Field(0.7, ge=0, le=MAX_TEMPERATURE, description="meta model's sampling temperature")
    meta_max_tokens: int | None = Field(None, ge=16, description="meta model's max tokens per reply (default: "
                                                                 "room for a header, or a header and a whole file)")
    proposals: int = Field(3, ge=1, le=8, description="new candidates the meta-agent proposes per iteration")
    # ladder by default: measured on home_intents, Qwen 1.5B choosing for itself (meta) spent the budget on
    # full evaluations of candidates that had screened at 0 and lost to the ladder (docs/EXPERIMENTS.md).
    eval_policy: EvalPolicy = Field("ladder", description="who chooses spot-checks and full evaluations: ladder "
                                    "(screen every proposal on the same tasks, fully evaluate the best if it beats "
                                    "the champion there), meta (the meta-agent chooses), always-full")
    screen_tasks: int = Field(6, ge=1, le=50, description="tasks of a screening spot-check (the champion's failures first)")
    promotion_confidence: float = Field(0.95, ge=0.5, le=0.999, description="confidence of the paired bootstrap "
                                        "interval of a candidate's search gain whose lower end must clear 0 for a promotion "
                                        "(0.90: a one-sided test at the 5 percent level)")
    inspect_steps: int = Field(2, ge=0, le=10, description="trace-reading replies the meta-agent may take before proposing")
    menu_order: MenuOrder = Field(
        "shuffled", description="order of the meta-agent's move menu: shuffled (seeded), or digest (the moves that "
                                "address the most failures first, each saying which; measured no better on home_intents)")
    proposal_mode: ProposalMode = Field(
        "compose", description="how an LLM meta-agent proposes: compose (pick menu moves, or write code), or rank "
                               "(choose among a pool of random draws, the random control's own proposals first)")
    pool_size: int = Field(9, ge=1, le=24, description="drawn candidates the meta-agent chooses among (--proposal-mode rank)")
    measure_noise: bool = Field(True, description="skip rerunning the seed to measure the noise floor",
                                json_schema_extra=flag("--no-noise-rerun", negate=True))
    test_every_champion: bool = Field(False, description="also test every promoted champion (recorded, never shown)")
    prompts_dir: str | None = Field(None, description="directory of jinja2 templates overriding the meta prompts")


class OptimizeConfig(_PerRun, RunOptions):
    meta_model: str = Field(DEFAULT_META_MODEL, description="model that rewrites the harness (the same as --task-model "
                            "for a same-model pairing), or a control without a model: 'random' (random search) or "
                            "'greedy' (the draws that address the most counted failures of the digest)")
    feedback: FeedbackMode = Field("traces", description=f"what the meta-agent sees of rollouts: {', '.join(FEEDBACK_MODES)}")


class _GateHarnesses(Options):
    baseline: str = Field(description="path of the harness before the change (e.g. the main branch's copy)")
    candidate: str = Field(description="path of the changed harness")


class GateOptions(_SplitSelection, _PerRun, RolloutOptions, _GateHarnesses):
    """`gate`: the baseline and the candidate harness on the same tasks, and a paired verdict."""

    max_drop: float = Field(0.0, ge=0, le=1, description="tolerated drop in score (0-1): fail only when the "
                            "candidate is significantly worse than the baseline by more than this (default 0.0)")
    reuse: bool = Field(True, description="run every rollout again instead of reusing identical successful "
                        "rollouts from earlier runs under --out", json_schema_extra=flag("--no-reuse", negate=True))


# --------------------------------------------------------------------------- flags from fields


class Flag(BaseModel):
    name: str  # --max-rollouts
    path: tuple[str, ...]  # ("budget", "rollouts")
    help: str
    metavar: str
    is_bool: bool = False
    negate: bool = False


def flags_of(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[Flag]:
    out = []
    for name, info in model.model_fields.items():
        meta = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += flags_of(annotation, prefix + (name,))
            continue
        flag_name = meta.get("flag", f"--{name.replace('_', '-')}")
        if flag_name is None:
            continue
        is_bool = annotation is bool
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        text = info.description or name.replace("_", " ")
        if not is_bool and default is not None and "default" not in text:
            text += f" (default {default})"
        kinds = set(getattr(annotation, "__args__", ())) | {annotation}
        metavar = "N" if int in kinds else "X" if float in kinds else name.upper()
        out.append(Flag(name=str(flag_name), path=prefix + (name,), help=text, metavar=metavar, is_bool=is_bool,
                        negate=bool(meta.get("negate"))))
    return out


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel], *, skip: tuple[str, ...] = (),
              help_overrides: dict[str, str] | None = None) -> None:
    """One flag per field of `model` (nested records flattened). Flags not given leave no value,
    so a config file's values stand unless overridden; the model holds the real defaults."""
    for f in flags_of(model):
        if ".".join(f.path) in skip:
            continue
        text = (help_overrides or {}).get(".".join(f.path), f.help)
        dest = "opt:" + ".".join(f.path)
        if f.is_bool:
            parser.add_argument(f.name, dest=dest, action="store_const", const=not f.negate,
                                default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(f.name, dest=dest, default=argparse.SUPPRESS, metavar=f.metavar, help=text)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, as a nested dict ({"budget": {"rollouts": "30"}})."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if dest.startswith("opt:"):
            *parents, leaf = dest[4:].split(".")
            node = out
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
    return out


def flag_names(model: type[BaseModel]) -> dict[tuple[str, ...], str]:
    return {f.path: f.name for f in flags_of(model)}


def read_config_file(path: str | Path, *, what: str = "config") -> dict[str, Any]:
    """A TOML file of options (field names as keys, `[budget]` as a table); relative paths in it
    resolve against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such {what} file")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        elif path.suffix == ".json":
            import json

            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise UsageError(f"{path}: {what} files are .toml (or .yaml/.yml, .json)")
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse or encoding error is the user's file
        raise UsageError(f"{path}: cannot parse: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a table of settings at the top level")
    for key in ("harness", "data", "prompts_dir", "benchmark"):
        value = data.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute() and (path.parent / value).exists():
            data[key] = str((path.parent / value).resolve())
    return data


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, nested tables merged key by key."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build(model: type[BaseModel], values: dict[str, Any], *, flags: dict[str, Any] | None = None,
          file: str | Path | None = None, command: str = "") -> Any:
    """Validate `values` (a config file's, with command-line `flags` on top) into `model`; the
    first problem becomes a one-line UsageError naming the flag or the file's key (`command`,
    e.g. "harnessopt eval", words it like the command line's own errors)."""
    flags = flags or {}
    try:
        return model.model_validate(merge(values, flags))
    except ValidationError as exc:
        text = describe_error(exc, model, flags, file)
        raise UsageError(f"{command}: {text} (see `{command} --help`)" if command else text) from None


def describe_error(exc: ValidationError, model: type[BaseModel], flags: dict[str, Any],
                   file: str | Path | None) -> str:
    names = flag_names(model)
    errors = exc.errors()
    missing = [tuple(str(p) for p in e["loc"]) for e in errors if e["type"] == "missing"]
    if missing:
        if file:
            return f"{file}: missing {', '.join('.'.join(m) for m in missing)} (or pass them as options)"
        return f"the following arguments are required: {', '.join(names.get(m, '.'.join(m)) for m in missing)}"
    err = errors[0]
    loc = tuple(str(p) for p in err["loc"])
    msg = _friendly(err)
    value = _lookup(flags, loc)
    if value is not None and loc in names:
        return f"argument {names[loc]}: {msg}, got {value!r}"
    key = ".".join(loc)
    where = f"{file}: " if file else ""
    return f"{where}{key}: {msg}" if key else f"{where}{msg}"


def _friendly(err: Any) -> str:
    """pydantic's message for one error, in the words the rest of the CLI uses."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}"
    if kind == "greater_than":
        return f"must be above {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "expected a whole number"
    if kind in ("float_parsing", "float_type"):
        return "expected a number"
    if kind == "finite_number":
        return "expected a finite number (not nan or inf)"
    if kind == "literal_error":
        return f"invalid choice (choose from {ctx.get('expected', '')})"
    if kind == "extra_forbidden":
        return "not an option (check the spelling)"
    return str(err["msg"]).replace("Value error, ", "")


def _lookup(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for p in path:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


__all__ = ["MAX_CONCURRENCY", "MAX_TEMPERATURE", "EvalOptions", "GateOptions", "OptimizeConfig", "Options",
           "RolloutOptions", "RunOptions", "TaskOptions", "add_flags", "build", "flag", "given_options", "merge", "read_config_file"]
