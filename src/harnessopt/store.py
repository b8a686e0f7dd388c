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
import logging
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from harnessopt.events import Event
from harnessopt.files import atomic_write
from harnessopt.harness import source_hash
from harnessopt.history import EVENTS, LEDGER, RunHistory, StoreError, first_error
from harnessopt.ledger import LEDGER_COLUMNS, LEDGER_HEADER, LedgerRow
from harnessopt.records import LLMResponse, Record, RolloutTrace
from harnessopt.runlock import DirectoryLock

STORE_FORMAT = 2  # 2: ledger with charged/reused/decision columns and meta rows; typed events
_CACHE_KEY_RE = re.compile(rb'"cache_key"\s*:\s*"([0-9a-f]+)"')
log = logging.getLogger("harnessopt")

__all__ = ["LEDGER_COLUMNS", "CandidateMeta", "LedgerRow", "RunStore", "StoreError", "atomic_write", "new_run_id",
           "safe_name"]


class CandidateMeta(Record):
    id: str
    parent: str | None = None
    harness_hash: str
    hypothesis: str = ""
    diff: str = ""
    findings: list[str] = Field(default_factory=list)
    origin: str = ""  # file it came from, or the meta action that wrote it
    moves: str = ""  # the menu moves (pattern steps) that made it, when it came from the menu
    predicted: float | None = None  # the proposer's predicted change of the search score
    created_at: float = Field(default_factory=time.time)


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
    def __init__(self, path: Path, *, writer: bool = False, lock: DirectoryLock | None = None,
                 resumed: bool = False):
        """`writer`: this process will append to the run (a new run, or a resume). A writer holds
        the directory's lock (one writer at a time) and alone repairs what a kill left behind (a
        half-written last line); readers never modify files. Close a writer when done."""
        self.path = Path(path).absolute()
        self.writer = writer
        self._lock = lock or (DirectoryLock(self.path).acquire() if writer else None)
        self.history = RunHistory(self.path, writer=writer, resumed=resumed)
        self._cache: dict[str, Path] | None = None
        self._damaged: set[Path] = set()
        # Rollouts written or replayed by this process: while a resume replays, the meta-agent
        # sees only those (the run as it was at that point), like rows of the ledger and events.
        self._touched: set[Path] = set()

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
        lock = None
        try:
            lock = DirectoryLock(path).acquire()
            info = {"format": STORE_FORMAT, "run_id": run_id, "created_at": time.time(), **run_info}
            # Ledger and events first, run.json last: a directory with run.json is a whole run.
            atomic_write(path / LEDGER, LEDGER_HEADER)
            (path / EVENTS).touch()
            atomic_write(path / "run.json", json.dumps(info, indent=2, default=str) + "\n")
        except BaseException:
            if lock is not None:
                lock.release()
            shutil.rmtree(path, ignore_errors=True)  # no half-made run directory left behind
            raise
        return cls(path, writer=True, lock=lock)

    @classmethod
    def open(cls, path: str | Path, *, writer: bool = False) -> "RunStore":
        """Open a run directory; `writer=True` (resume) takes its lock (then call check_whole())."""
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
        return cls(path, writer=writer, resumed=writer)

    def check_whole(self) -> None:
        """Every ledger row and event readable, every candidate's code as it was written: a resume
        builds on these, so a damaged one is a one-line error now rather than a failure later.
        (Rollout files are checked when used: a damaged one is simply run again.)"""
        self.history.load_recorded()
        for meta in self.candidates():
            code = self.harness_path(meta.id)
            try:
                text = code.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = None
            if text is None or source_hash(text) != meta.harness_hash:
                raise StoreError(f"{code}: {'missing or unreadable' if text is None else 'changed'} since the run "
                                 "wrote it (its hash no longer matches meta.json); restore it, or delete the "
                                 "candidate's folder and resume: the run writes it again")

    def close(self) -> None:
        """Release the directory's lock (a writer); the store stays readable."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        """Store a candidate, unless a resume finds it already stored with the same code. Stored
        with other code, it is what a resume that took another path replaces: the old one moves
        to diverged/ with the rest of the killed run's history."""
        directory = self.candidate_dir(meta.id)
        if self.has_candidate(meta.id):
            if self.candidate_meta(meta.id).harness_hash == meta.harness_hash:
                return directory / "harness.py"
            moved = (self.history.diverged or self.path / "diverged" / time.strftime("%Y%m%d-%H%M%S"))
            (moved / "candidates").mkdir(parents=True, exist_ok=True)
            shutil.move(str(directory), str(moved / "candidates" / directory.name))
            log.warning("%s: replaced by the resumed run's own %s (the old one is in %s)", directory, meta.id,
                        self.relative(moved))
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
            raise StoreError(f"{path}: not a candidate's meta.json ({first_error(exc)}); restore it") from None

    # ------------------------------------------------------------------ rollouts and cache

    def rollout_path(self, candidate_id: str, task_id: str, trial: int) -> Path:
        return self.path / "rollouts" / safe_name(candidate_id) / safe_name(task_id) / f"{trial}.json"

    def write_rollout(self, trace: RolloutTrace) -> Path:
        path = self.rollout_path(trace.candidate_id, trace.task_id, trace.trial)
        atomic_write(path, trace.model_dump_json(indent=1) + "\n")
        self._index()[trace.cache_key] = path
        self.history.active = True
        self._touched.add(path)
        return path

    def read_rollout(self, path: Path) -> RolloutTrace:
        return RolloutTrace.model_validate_json(Path(path).read_bytes())

    def _read_or_none(self, path: Path) -> RolloutTrace | None:
        """A rollout file, or None (said once per file) when it is damaged: cut short, edited, not
        UTF-8. A damaged rollout counts as missing, so the run simply runs it again."""
        try:
            return self.read_rollout(path)
        except (ValidationError, ValueError, OSError) as exc:
            if path not in self._damaged:
                self._damaged.add(path)
                detail = first_error(exc) if isinstance(exc, ValidationError) else type(exc).__name__
                log.warning("%s: damaged rollout file (%s); it is run again", path, detail)
            return None

    def cached(self, cache_key: str) -> RolloutTrace | None:
        path = self._index().get(cache_key)
        if path is None or not path.is_file():
            return None
        trace = self._read_or_none(path)
        if trace is None or trace.cache_key != cache_key:
            self._index().pop(cache_key, None)
            return None
        self._touched.add(path)
        return trace

    def rollouts(self, candidate_id: str) -> list[RolloutTrace]:
        root = self.path / "rollouts" / safe_name(candidate_id)
        paths = sorted(root.glob("*/*.json"))
        if self.history.replaying():
            paths = [p for p in paths if p in self._touched]
        return [t for t in (self._read_or_none(p) for p in paths) if t is not None]

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
        """A cached meta-model response for this exact request key, or None (also when damaged:
        then the model is asked again)."""
        path = self.path / "meta_cache" / f"{key}.json"
        if not path.is_file():
            return None
        try:
            return LLMResponse.model_validate_json(path.read_bytes())
        except (ValidationError, OSError) as exc:
            log.warning("%s: damaged cached meta-model response (%s); asking the model again", path,
                        first_error(exc) if isinstance(exc, ValidationError) else type(exc).__name__)
            return None

    def meta_cache(self) -> "MetaResponseCache":
        """The meta-model response cache in the shape `llm.metered_call` takes (get/put by key)."""
        return MetaResponseCache(self)

    def save_meta_response(self, key: str, response: LLMResponse) -> None:
        atomic_write(self.path / "meta_cache" / f"{key}.json", response.model_dump_json())

    def write_transcript(self, iteration: int, messages: list[dict[str, Any]]) -> None:
        """The meta-agent's conversation of one iteration so far (rewritten as it grows)."""
        self._rewrite_growing(self.path / "meta" / f"{iteration:03d}.jsonl",
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
        self._rewrite_growing(self.path / "notebook.md", "# Notebook\n\n" + "\n".join(entries) + "\n")

    def _rewrite_growing(self, path: Path, text: str) -> None:
        """Rewrite a file that only grows during a run (notebook, transcripts). While a resume
        replays, what it rewrites is the file as it was earlier in the run: a prefix of what is on
        disk. Writing it would lose the rest if the replay is stopped before it catches up (Ctrl-C
        during a rerun of a finished run), so a prefix is not written."""
        if (self.history.catching_up() and path.is_file()
                and path.read_text(encoding="utf-8", errors="replace").startswith(text)):
            return
        atomic_write(path, text)

    def notebook(self) -> str:
        path = self.path / "notebook.md"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    # ------------------------------------------------------------------ ledger, events, clock (history.py)

    def append_ledger(self, row: LedgerRow) -> None:
        self.history.append_ledger(row)

    def ledger(self) -> list[LedgerRow]:
        return self.history.ledger()

    def append_event(self, event: Event) -> None:
        self.history.append_event(event)

    def events(self) -> list[Event]:
        return self.history.events()

    def start_clock(self) -> None:
        """Begin this process's session of the run (see RunHistory.start_clock)."""
        self.update_info(sessions=self.history.start_clock(self.info().get("sessions") or []))

    def clock(self) -> float:
        return self.history.clock()


class MetaResponseCache:
    """get/put by request key over the run's meta_cache/ (what `llm.metered_call` takes)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def get(self, key: str) -> LLMResponse | None:
        return self.store.meta_response(key)

    def put(self, key: str, response: LLMResponse) -> None:
        self.store.save_meta_response(key, response)
