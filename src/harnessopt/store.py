"""The run directory: plain files a person can read, written so a kill never corrupts them.

    <root>/<run_id>/
      run.json                      config, models, budgets, seeds, package versions
      ledger.tsv                    one row per evaluation (append-only)
      events.jsonl                  every decision, with its rationale (append-only)
      candidates/<id>/harness.py    the candidate's code
      candidates/<id>/meta.json     parent, hypothesis, diff, static-check findings
      rollouts/<id>/<task>/<trial>.json   one full trace per rollout

Whole files are written to a temporary name and renamed into place (atomic on POSIX); the
append-only files get one write() per row. The rollout files are the source of truth for the
result cache: on open the store indexes them by cache key, so nothing on disk is paid twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from harnessopt.errors import UserError
from harnessopt.records import Record, RolloutTrace

STORE_FORMAT = 1
LEDGER_COLUMNS = [
    "iter", "candidate", "parent", "kind", "split", "n_tasks", "trials", "score",
    "tokens", "cost_usd", "status", "note", "time",
]
_CACHE_KEY_RE = re.compile(rb'"cache_key"\s*:\s*"([0-9a-f]+)"')


class StoreError(UserError, ValueError):
    pass


class LedgerRow(Record):
    iter: int = 0
    candidate: str
    parent: str = ""
    kind: str  # spot | full | test | eval
    split: str
    n_tasks: int
    trials: int
    score: float
    tokens: int = 0
    cost_usd: float = 0.0
    status: str = "ok"
    note: str = ""
    time: float = Field(default_factory=time.time)


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
    def __init__(self, path: Path):
        self.path = Path(path)
        self._cache: dict[str, Path] | None = None
        # A resumed run replays its history from caches; rows already on disk are not appended
        # again. These count rows present at open and rows appended (or replayed) since.
        self._on_disk = {"ledger.tsv": self._count_rows("ledger.tsv", header=True),
                         "events.jsonl": self._count_rows("events.jsonl")}
        self._appended = {"ledger.tsv": 0, "events.jsonl": 0}
        # A resumed run replays its history; while it does, readers through this store see the
        # run directory as it was at that point of the original run (rows appended so far, rollouts
        # written or replayed so far), not the rows and rollouts the killed run had already
        # written further on. Otherwise the meta-agent's views, hence its prompts, would differ
        # from the original run's and the replay would diverge (and pay the meta model again).
        self._resumed = sum(self._on_disk.values()) > 0
        self._writer = False
        self._touched: set[Path] = set()

    def _count_rows(self, name: str, header: bool = False) -> int:
        p = self.path / name
        if not p.is_file():
            return 0
        _drop_partial_last_line(p)
        with open(p, "rb") as f:
            n = sum(1 for line in f if line.endswith(b"\n"))
        return max(0, n - int(header))

    def _replaying(self) -> bool:
        return self._resumed and self._writer

    def _append_once(self, name: str, text: str) -> None:
        self._writer = True
        self._appended[name] += 1
        if self._appended[name] <= self._on_disk[name]:
            return  # replaying a resumed run: this row is already there
        _append_line(self.path / name, text)

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
            atomic_write(path / "ledger.tsv", "\t".join(LEDGER_COLUMNS) + "\n")
            (path / "events.jsonl").touch()
            atomic_write(path / "run.json", json.dumps(info, indent=2, default=str) + "\n")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # no half-made run directory left behind
            raise
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> "RunStore":
        path = Path(path)
        run_json = path / "run.json"
        if not run_json.is_file():
            raise StoreError(f"{path}: not a harnessopt run directory (no run.json); pass the directory a run created")
        try:
            info = json.loads(run_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StoreError(f"{run_json}: corrupt JSON at line {exc.lineno}; restore it or start a new run") from None
        if info.get("format") != STORE_FORMAT:
            raise StoreError(
                f"{run_json}: run directory format {info.get('format')!r} is not {STORE_FORMAT}; "
                "open it with the harnessopt version that wrote it, or start a new run"
            )
        return cls(path)

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

    def add_candidate(self, source: str, meta: CandidateMeta) -> Path:
        directory = self.candidate_dir(meta.id)
        # Code first, meta last: a candidate with meta.json is complete.
        atomic_write(directory / "harness.py", source)
        atomic_write(directory / "meta.json", meta.model_dump_json(indent=2) + "\n")
        return directory / "harness.py"

    def has_candidate(self, candidate_id: str) -> bool:
        return (self.candidate_dir(candidate_id) / "meta.json").is_file()

    def candidate_meta(self, candidate_id: str) -> CandidateMeta:
        return CandidateMeta.model_validate_json((self.candidate_dir(candidate_id) / "meta.json").read_text())

    def candidate_source(self, candidate_id: str) -> str:
        return (self.candidate_dir(candidate_id) / "harness.py").read_text(encoding="utf-8")

    def candidates(self) -> list[CandidateMeta]:
        metas = [
            CandidateMeta.model_validate_json(p.read_text())
            for p in (self.path / "candidates").glob("*/meta.json")
        ]
        return sorted(metas, key=lambda m: m.created_at)

    # ------------------------------------------------------------------ rollouts and cache

    def rollout_path(self, candidate_id: str, task_id: str, trial: int) -> Path:
        return self.path / "rollouts" / safe_name(candidate_id) / safe_name(task_id) / f"{trial}.json"

    def write_rollout(self, trace: RolloutTrace) -> Path:
        path = self.rollout_path(trace.candidate_id, trace.task_id, trace.trial)
        atomic_write(path, trace.model_dump_json(indent=1) + "\n")
        self._index()[trace.cache_key] = path
        self._writer = True
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

    # ------------------------------------------------------------------ ledger and events

    def append_ledger(self, row: LedgerRow) -> None:
        buf = io.StringIO()
        values = row.model_dump()
        values["score"] = f"{row.score:.4f}"
        values["cost_usd"] = f"{row.cost_usd:.6f}"
        values["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(row.time))
        values["note"] = row.note.replace("\t", " ").replace("\n", " ")
        csv.writer(buf, delimiter="\t", lineterminator="\n").writerow([values[c] for c in LEDGER_COLUMNS])
        self._append_once("ledger.tsv", buf.getvalue())

    def ledger(self) -> list[dict[str, str]]:
        with open(self.path / "ledger.tsv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        return rows[: self._appended["ledger.tsv"]] if self._replaying() else rows

    def append_event(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"t": time.time(), "kind": kind, **fields}, default=str, ensure_ascii=False)
        self._append_once("events.jsonl", line + "\n")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in (self.path / "events.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill mid-write is skipped, never fatal
        return out[: self._appended["events.jsonl"]] if self._replaying() else out


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
