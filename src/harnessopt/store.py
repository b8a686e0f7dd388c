"""The run directory: plain files a person can read, written so a kill never corrupts them.

    <root>/<run_id>/
      run.json                      config, models, budgets, seeds, package versions, result
      ledger.tsv                    one row per evaluation and per iteration's meta spend (ledger.py)
      events.jsonl                  every action and decision, with its reason (events.py)
      notebook.md                   the meta-agent's notes, carried across iterations
      candidates/<id>/harness.py    the candidate's code
      candidates/<id>/meta.json     parent, hypothesis, diff, static-check findings, code hash
      rollouts/<id>/<task>/<trial>.json   one full trace per rollout
      meta/<iter>.jsonl             the meta-agent's transcript of one iteration
      meta_cache/<key>.json         every meta-model response, keyed by its exact request

`RunStore` owns every path in it: other modules read and write through its methods and get
typed records back. Whole files are written to a temporary name and renamed into place (atomic
on POSIX); the append-only files get one write() per row. The rollout files are the source of
truth for the result cache: on open the store indexes them by cache key, so nothing on disk is
paid twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from harnessopt.events import Event, parse_event
from harnessopt.ledger import LEDGER_COLUMNS, LEDGER_HEADER, LedgerError, LedgerRow, format_row, parse_ledger
from harnessopt.records import LLMResponse, Record, RolloutTrace

STORE_FORMAT = 2  # 2: ledger with charged/reused/decision columns and meta rows; typed events
LEDGER, EVENTS = "ledger.tsv", "events.jsonl"
_CACHE_KEY_RE = re.compile(rb'"cache_key"\s*:\s*"([0-9a-f]+)"')

__all__ = ["LEDGER_COLUMNS", "CandidateMeta", "LedgerRow", "RunStore", "StoreError", "atomic_write", "new_run_id",
           "safe_name"]


class StoreError(ValueError):
    pass


class CandidateMeta(Record):
    id: str
    parent: str | None = None
    harness_hash: str
    hypothesis: str = ""
    diff: str = ""
    findings: list[str] = Field(default_factory=list)
    origin: str = ""  # file it came from, or the meta action that wrote it
    created_at: float = Field(default_factory=time.time)


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def safe_name(name: str) -> str:
    """A file-system-safe, still recognisable form of a task or candidate id."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"
    if cleaned != name:  # keep distinct ids distinct after cleaning
        cleaned = f"{cleaned}-{_short_hash(name)}"
    return cleaned[:120]


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def new_run_id(label: str = "run") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{safe_name(label)[:40]}-{secrets.token_hex(2)}"


class RunStore:
    def __init__(self, path: Path, *, writer: bool = False):
        """`writer`: this process will append to the run (a new run, or a resume). Only a writer
        repairs what a kill left behind (a half-written last line); readers never modify files."""
        self.path = Path(path)
        self.writer = writer
        self._cache: dict[str, Path] | None = None
        # A resumed run replays its history from caches; rows already on disk are not appended
        # again. These count rows present at open and rows appended (or replayed) since.
        self._on_disk = {LEDGER: self._count_rows(LEDGER, header=True), EVENTS: self._count_rows(EVENTS)}
        self._appended = {LEDGER: 0, EVENTS: 0}
        # A resumed run replays its history; while it does, readers through this store see the
        # run directory as it was at that point of the original run (rows appended so far, rollouts
        # written or replayed so far), not the rows and rollouts the killed run had already
        # written further on. Otherwise the meta-agent's views, hence its prompts, would differ
        # from the original run's and the replay would diverge (and pay the meta model again).
        self._resumed = sum(self._on_disk.values()) > 0
        self._active = False  # set by the first append or rollout write of this process
        self._touched: set[Path] = set()

    def _count_rows(self, name: str, header: bool = False) -> int:
        p = self.path / name
        if not p.is_file():
            return 0
        if self.writer:
            _drop_partial_last_line(p)
        with open(p, "rb") as f:
            n = sum(1 for line in f if line.endswith(b"\n"))
        return max(0, n - int(header))

    def _replaying(self) -> bool:
        return self._resumed and self._active

    def _append_once(self, name: str, text: str) -> None:
        self._active = True
        self._appended[name] += 1
        if self._appended[name] <= self._on_disk[name]:
            return  # replaying a resumed run: this row is already there
        path = self.path / name
        if name == LEDGER and not path.is_file():  # deleted: rebuilt, header first
            atomic_write(path, LEDGER_HEADER)
        _append_line(path, text)

    # ------------------------------------------------------------------ create / open

    @classmethod
    def create(cls, root: str | Path, run_info: dict[str, Any], *, run_id: str | None = None,
               label: str = "run") -> "RunStore":
        root = Path(root)
        run_id = run_id or new_run_id(label)
        path = root / run_id
        if path.exists():
            raise StoreError(f"{path}: run directory already exists; pick another --out or use --resume")
        if root.exists() and not root.is_dir():
            raise StoreError(f"--out {root} is a file, not a folder; pass a folder for run directories")
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise StoreError(f"cannot create the run directory {path}: {exc.strerror}; pass a writable --out folder") from None
        try:
            info = {"format": STORE_FORMAT, "run_id": run_id, "created_at": time.time(), **run_info}
            # Ledger and events first, run.json last: a directory with run.json is a whole run.
            atomic_write(path / LEDGER, LEDGER_HEADER)
            (path / EVENTS).touch()
            atomic_write(path / "run.json", json.dumps(info, indent=2, default=str) + "\n")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # no half-made run directory left behind
            raise
        return cls(path, writer=True)

    @classmethod
    def open(cls, path: str | Path, *, writer: bool = False) -> "RunStore":
        path = Path(path)
        run_json = path / "run.json"
        if not run_json.is_file():
            raise StoreError(f"{path}: not a harnessopt run directory (no run.json); pass the directory a run created")
        try:
            info = json.loads(run_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise StoreError(f"{run_json}: corrupt JSON{where}; restore it or start a new run") from None
        found = info.get("format") if isinstance(info, dict) else None
        if found != STORE_FORMAT:
            raise StoreError(
                f"{run_json}: run directory format {found!r}, this harnessopt reads format {STORE_FORMAT}; "
                "open it with the harnessopt version that wrote it, or start a new run"
            )
        return cls(path, writer=writer)

    @property
    def run_id(self) -> str:
        return self.path.name

    def info(self) -> dict[str, Any]:
        return json.loads((self.path / "run.json").read_text(encoding="utf-8"))

    def update_info(self, **fields: Any) -> None:
        info = self.info()
        info.update(fields)
        atomic_write(self.path / "run.json", json.dumps(info, indent=2, default=str) + "\n")

    # ------------------------------------------------------------------ candidates

    def candidate_dir(self, candidate_id: str) -> Path:
        return self.path / "candidates" / safe_name(candidate_id)

    def harness_path(self, candidate_id: str) -> Path:
        return self.candidate_dir(candidate_id) / "harness.py"

    def add_candidate(self, source: str, meta: CandidateMeta) -> Path:
        directory = self.candidate_dir(meta.id)
        # Code first, meta last: a candidate with meta.json is complete.
        atomic_write(directory / "harness.py", source)
        atomic_write(directory / "meta.json", meta.model_dump_json(indent=2) + "\n")
        return directory / "harness.py"

    def has_candidate(self, candidate_id: str) -> bool:
        return (self.candidate_dir(candidate_id) / "meta.json").is_file()

    def candidate_meta(self, candidate_id: str) -> CandidateMeta:
        return self._read_meta(self.candidate_dir(candidate_id) / "meta.json")

    def candidate_source(self, candidate_id: str) -> str:
        return self.harness_path(candidate_id).read_text(encoding="utf-8")

    def candidates(self) -> list[CandidateMeta]:
        metas = [self._read_meta(p) for p in (self.path / "candidates").glob("*/meta.json")]
        return sorted(metas, key=lambda m: m.created_at)

    @staticmethod
    def _read_meta(path: Path) -> CandidateMeta:
        try:
            return CandidateMeta.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise StoreError(f"{path}: not a candidate's meta.json ({_first_error(exc)}); restore it") from None

    # ------------------------------------------------------------------ rollouts and cache

    def rollout_path(self, candidate_id: str, task_id: str, trial: int) -> Path:
        return self.path / "rollouts" / safe_name(candidate_id) / safe_name(task_id) / f"{trial}.json"

    def write_rollout(self, trace: RolloutTrace) -> Path:
        path = self.rollout_path(trace.candidate_id, trace.task_id, trace.trial)
        atomic_write(path, trace.model_dump_json(indent=1) + "\n")
        self._index()[trace.cache_key] = path
        self._active = True
        self._touched.add(path)
        return path

    def read_rollout(self, path: Path) -> RolloutTrace:
        return RolloutTrace.model_validate_json(Path(path).read_text(encoding="utf-8"))

    def cached(self, cache_key: str) -> RolloutTrace | None:
        path = self._index().get(cache_key)
        if path is None or not path.is_file():
            return None
        self._touched.add(path)
        return self.read_rollout(path)

    def rollouts(self, candidate_id: str) -> list[RolloutTrace]:
        root = self.path / "rollouts" / safe_name(candidate_id)
        paths = sorted(root.glob("*/*.json"))
        if self._replaying():
            paths = [p for p in paths if p in self._touched]
        return [self.read_rollout(p) for p in paths]

    def all_rollouts(self) -> list[RolloutTrace]:
        """Every rollout file of the run (for reports); a file cut by a kill is skipped."""
        out = []
        for p in sorted((self.path / "rollouts").glob("*/*/*.json")):
            try:
                out.append(self.read_rollout(p))
            except (ValidationError, ValueError, OSError):
                continue
        return out

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.path).as_posix()

    def _index(self) -> dict[str, Path]:
        if self._cache is None:
            self._cache = {}
            for p in (self.path / "rollouts").glob("*/*/*.json"):
                with open(p, "rb") as f:
                    head = f.read(512)  # cache_key is the first field of every trace
                m = _CACHE_KEY_RE.search(head)
                if m:
                    self._cache.setdefault(m.group(1).decode(), p)
        return self._cache

    # ------------------------------------------------------------------ the meta-agent's files

    def meta_response(self, key: str) -> LLMResponse | None:
        """A cached meta-model response for this exact request key, or None (a damaged file is a miss:
        the call is made again and the file rewritten)."""
        path = self.path / "meta_cache" / f"{key}.json"
        if not path.is_file():
            return None
        try:
            return LLMResponse.model_validate_json(path.read_bytes())
        except ValueError:
            return None

    def meta_cache(self) -> "MetaResponseCache":
        """The meta-model response cache in the shape `llm.metered_call` takes (get/put by key)."""
        return MetaResponseCache(self)

    def save_meta_response(self, key: str, response: LLMResponse) -> None:
        atomic_write(self.path / "meta_cache" / f"{key}.json", response.model_dump_json())

    def write_transcript(self, iteration: int, messages: list[dict[str, Any]]) -> None:
        """The meta-agent's conversation of one iteration so far (rewritten as it grows)."""
        atomic_write(self.path / "meta" / f"{iteration:03d}.jsonl",
                     "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages))

    def transcripts(self) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for p in sorted((self.path / "meta").glob("*.jsonl")):
            lines = []
            for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
            out[p.stem] = lines
        return out

    def write_notebook(self, entries: list[str]) -> None:
        atomic_write(self.path / "notebook.md", "# Notebook\n\n" + "\n".join(entries) + "\n")

    def notebook(self) -> str:
        path = self.path / "notebook.md"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    # ------------------------------------------------------------------ ledger and events

    def append_ledger(self, row: LedgerRow) -> None:
        self._append_once(LEDGER, format_row(row))

    def ledger(self) -> list[LedgerRow]:
        path = self.path / LEDGER
        if not path.is_file():
            raise StoreError(f"{path}: missing; `harnessopt optimize --resume {self.path}` rebuilds it "
                             "from the run's caches")
        try:
            rows = parse_ledger(path)
        except LedgerError as exc:
            raise StoreError(str(exc)) from None
        return rows[: self._appended[LEDGER]] if self._replaying() else rows

    def append_event(self, event: Event) -> None:
        self._append_once(EVENTS, event.model_dump_json() + "\n")

    def events(self) -> list[Event]:
        path = self.path / EVENTS
        if not path.is_file():
            return []
        out = []
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if not line.endswith(b"\n"):
                    break  # a line a kill cut short (a writer cuts it on open; readers skip it)
                try:
                    out.append(parse_event(line))
                except ValidationError as exc:
                    raise StoreError(f"{path}: line {number} is not an event ({_first_error(exc)}); restore the "
                                     f"file, or delete it and `harnessopt optimize --resume` the run") from None
        return out[: self._appended[EVENTS]] if self._replaying() else out


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


class MetaResponseCache:
    def __init__(self, store: RunStore) -> None:
        self.store = store

    def get(self, key: str) -> LLMResponse | None:
        return self.store.meta_response(key)

    def put(self, key: str, response: LLMResponse) -> None:
        self.store.save_meta_response(key, response)


def _drop_partial_last_line(path: Path) -> None:
    """A kill during an append can leave a line without its newline: cut it so appends stay clean."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _append_line(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
