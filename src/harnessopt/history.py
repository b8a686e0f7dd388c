"""A run's history: the append-only ledger.tsv and events.jsonl, resume-as-replay, and the run's clock.

Rows are appended with one write() each; a kill can only leave a last line without its newline,
which the next writer cuts off. A resumed run replays its history from the start (everything it
computes comes from caches), so rows already on disk are not written again: each replayed row is
checked against the recorded one (`replay_identity`). If they differ, the resumed run has taken
another path (a wall-clock limit reached at another point, for example): the recorded rows from
there on move to `diverged/<time>/`, a `resume_diverged` event says so, and the resumed run
writes its own history. The files always describe the run that produced the result.

The run's clock spans its sessions (run.json `sessions`): a resume continues from the killed
session's last write, so `elapsed_s` is never reset and a wall-clock budget is never granted
twice. While replaying, the clock reads the recorded times, so time limits decide as they did.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import ValidationError

from harnessopt import files
from harnessopt.events import STOP_KINDS, Event, ResumeDiverged, parse_event, replay_identity
from harnessopt.errors import UserError
from harnessopt.ledger import LEDGER_HEADER, LedgerError, LedgerRow, format_row, parse_ledger

LEDGER, EVENTS = "ledger.tsv", "events.jsonl"


class StoreError(UserError, ValueError):
    """A run directory that cannot be used as asked; the message names the file and the fix."""


class RunHistory:
    def __init__(self, path: Path, *, writer: bool = False, resumed: bool = False):
        self.path = path
        self.writer = writer
        # Rows present at open, and rows appended (or replayed) by this process since.
        self._on_disk = {LEDGER: self._count_rows(LEDGER, header=True), EVENTS: self._count_rows(EVENTS)}
        self._appended = {LEDGER: 0, EVENTS: 0}
        self.resumed = resumed
        self.active = False  # set by this process's first append (or rollout write)
        self._recorded: dict[str, list[tuple]] = {LEDGER: [], EVENTS: []}
        self._event_times: list[float] = []
        self._stop_rows: set[int] = set()
        self.diverged: Path | None = None
        self._sessions: list[dict[str, float]] = []
        self._clock_base = 0.0
        self._caught_up: float | None = None  # monotonic time when the replay caught up (or the run began)
        self._fresh_start = time.monotonic()

    def replaying(self) -> bool:
        """A resumed run that has started appending: readers see the run as it was at this point
        of the original run, so the meta-agent's views (hence its prompts) replay identically."""
        return self.resumed and self.active

    def catching_up(self) -> bool:
        """A resumed run replaying what was recorded (before its last recorded event, on the
        recorded path): what it rewrites now is older than what the files hold."""
        return self.resumed and self._caught_up is None and bool(self._event_times)

    def load_recorded(self) -> None:
        """Read (and so check) every recorded row; a resume compares its replay against them."""
        if (self.path / LEDGER).is_file():
            self._recorded[LEDGER] = [r.replay_identity() for r in self.ledger()]
        events = self.events()
        self._recorded[EVENTS] = [replay_identity(e) for e in events]
        self._event_times = [e.t for e in events]
        self._stop_rows = {i for i, e in enumerate(events) if e.kind in STOP_KINDS}

    # ------------------------------------------------------------------ rows

    def append_ledger(self, row: LedgerRow) -> None:
        self._append_once(LEDGER, format_row(row), row.replay_identity())

    def ledger(self) -> list[LedgerRow]:
        path = self.path / LEDGER
        if not path.is_file():
            raise StoreError(f"{path}: missing; `harnessopt optimize --resume {self.path}` rebuilds it "
                             "from the run's caches")
        try:
            rows = parse_ledger(path)
        except LedgerError as exc:
            raise StoreError(str(exc)) from None
        return rows[: self._appended[LEDGER]] if self.replaying() else rows

    def append_event(self, event: Event) -> None:
        self._append_once(EVENTS, event.model_dump_json() + "\n", replay_identity(event))

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
                    raise StoreError(f"{path}: line {number} is not an event ({first_error(exc)}); restore the "
                                     f"file, or delete it and `harnessopt optimize --resume` the run") from None
        return out[: self._appended[EVENTS]] if self.replaying() else out

    def _count_rows(self, name: str, header: bool = False) -> int:
        p = self.path / name
        if not p.is_file():
            return 0
        if self.writer:
            files.drop_partial_last_line(p)
        with open(p, "rb") as f:
            n = sum(1 for line in f if line.endswith(b"\n"))
        return max(0, n - int(header))

    def _append_once(self, name: str, text: str, identity: tuple) -> None:
        self.active = True
        n = self._appended[name]
        self._appended[name] += 1
        if name == EVENTS and self._caught_up is None and self._appended[EVENTS] == len(self._event_times):
            self._caught_up = time.monotonic()  # the last recorded event: the replay has caught up
        if n < self._on_disk[name]:
            recorded = self._recorded[name][n] if n < len(self._recorded[name]) else identity
            if recorded == identity:
                return  # replaying a resumed run: this row is already there
            self._diverge(name, n, recorded, identity)
        path = self.path / name
        if name == LEDGER and not path.is_file():  # deleted: rebuilt, header first
            files.atomic_write(path, LEDGER_HEADER)
        files.append_line(path, text)

    def _diverge(self, name: str, row: int, recorded: tuple, replayed: tuple) -> None:
        """The resumed run took another path than the killed one from this row on: keep what
        both share, move the killed run's rest to diverged/<time>/, and say so."""
        import logging

        self.diverged = self.path / "diverged" / time.strftime("%Y%m%d-%H%M%S")
        keep = {LEDGER: self._appended[LEDGER] - (name == LEDGER), EVENTS: self._appended[EVENTS] - (name == EVENTS)}
        for file, n in keep.items():
            files.split_file(self.path / file, n + (file == LEDGER), self.diverged / file, header_lines=file == LEDGER)
            self._on_disk[file] = n
        if self._caught_up is None:
            self._caught_up = time.monotonic()
        moved = self.diverged.relative_to(self.path).as_posix()
        logging.getLogger("harnessopt").warning(
            "%s: this resume took another path than the killed run at %s row %d (a wall-clock limit reached at "
            "another point, for example); the killed run's rest is kept in %s", self.path, name, row + 1, moved)
        event = ResumeDiverged(iter=int(replayed[1] if name == EVENTS else replayed[0]), file=name, row=row + 1,
                               recorded=repr(recorded)[:300], replayed=repr(replayed)[:300], moved_to=moved)
        self._appended[EVENTS] += 1
        files.append_line(self.path / EVENTS, event.model_dump_json() + "\n")

    # ------------------------------------------------------------------ the run's clock

    def start_clock(self, sessions: list[dict[str, float]]) -> list[dict[str, float]]:
        """Begin this process's session; returns the sessions to record in run.json."""
        sessions = list(sessions)
        base = 0.0
        if sessions:  # resumed: continue from the killed session's last write
            writes = [p.stat().st_mtime for p in (self.path / LEDGER, self.path / EVENTS) if p.is_file()]
            points = writes + self._event_times[-1:]
            base = max([sessions[-1]["elapsed_at_start"]] + [_elapsed_at(t, sessions) for t in points])
        sessions.append({"started_at": time.time(), "elapsed_at_start": base})
        self._sessions, self._clock_base = sessions, base
        if not self._event_times:
            self._caught_up = time.monotonic()
        return sessions

    def clock(self) -> float:
        """Seconds of the run so far, over all its sessions."""
        if not self._sessions:  # no session started (a reader): time since this object was made
            return time.monotonic() - self._fresh_start
        if self._caught_up is None:  # replaying: the time recorded at this point of the run
            n = self._appended[EVENTS]
            if n < len(self._event_times):
                # A recorded stop was decided by the clock right then; anything else by the
                # clock as of the last event before it.
                t = self._event_times[n] if n in self._stop_rows else self._event_times[max(0, n - 1)]
                return _elapsed_at(t, self._sessions)
            self._caught_up = time.monotonic()
        return self._clock_base + (time.monotonic() - self._caught_up)


def _elapsed_at(t: float, sessions: list[dict[str, float]]) -> float:
    """The run clock at wall time `t`: within the last session started by then."""
    started = [s for s in sessions if s["started_at"] <= t] or sessions[:1]
    s = started[-1]
    return s["elapsed_at_start"] + max(0.0, t - s["started_at"])


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
