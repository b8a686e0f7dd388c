"""`ledger.tsv`: one self-contained row per evaluation, and one `meta` row per iteration.

Like autoresearch's results.tsv, the ledger alone says what each evaluation cost and what was
decided: `charged` is the number of rollouts the evaluation paid for (the budget's count),
`reused` the rollouts it got without paying (already run by this run: an earlier spot-check of
the same code, or identical code under another candidate), and `decision` what came of it:

    baseline   the seed's first full evaluation on the search split
    noise      the seed's rerun that measures the noise floor
    spot       a spot-check (informs the meta-agent; never promotes)
    promoted   a full evaluation that beat the champion and replaced it
    rejected   a full evaluation that did not (the reason is in events.jsonl)
    champion   a full evaluation of the current champion itself (nothing to compare)
    test       the held-out test evaluation (outside the search budget)
    eval       `harnessopt eval`
    meta       the meta-agent's spend in one iteration: tokens, USD, and calls in the note
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from harnessopt.errors import UserError
from harnessopt.records import EvalResult, Record

LedgerKind = Literal["full", "spot", "noise", "test", "eval", "meta"]
LedgerDecision = Literal["baseline", "noise", "spot", "promoted", "rejected", "champion", "test", "eval", "meta"]
LEDGER_COLUMNS = [
    "iter", "candidate", "parent", "kind", "split", "n_tasks", "trials", "score", "charged", "reused",
    "tokens", "cost_usd", "status", "decision", "note", "time",
]
LEDGER_HEADER = "\t".join(LEDGER_COLUMNS) + "\n"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


class LedgerError(UserError, ValueError):
    """A ledger line that cannot be read; the message names the file, the line and the fix."""


class LedgerRow(Record):
    iter: int = 0
    candidate: str = ""
    parent: str = ""
    kind: LedgerKind
    split: str = ""  # "" on meta rows
    n_tasks: int = 0
    trials: int = 0
    score: float | None = None  # None on meta rows
    charged: int = 0  # rollouts this evaluation paid for
    reused: int = 0  # rollouts it was served without paying
    tokens: int = 0
    cost_usd: float = 0.0
    status: str = "ok"  # ok | cut | "<n> failed"
    decision: LedgerDecision
    note: str = ""
    time: float = Field(default_factory=time.time)

    @classmethod
    def for_eval(cls, result: EvalResult, *, kind: LedgerKind, decision: LedgerDecision, iteration: int = 0,
                 parent: str = "", note: str = "") -> "LedgerRow":
        """The row of one evaluation, from its result and what the caller decided."""
        return cls(iter=iteration, candidate=result.candidate_id, parent=parent, kind=kind, split=result.split,
                   n_tasks=result.n_tasks, trials=result.trials, score=result.score, charged=result.charged,
                   reused=result.reused, tokens=result.usage.tokens, cost_usd=result.usage.cost_usd,
                   status=result.status, decision=decision, note=note)

    def replay_identity(self) -> tuple:
        """What a replayed row must share with the recorded one (everything but time and text)."""
        return (self.iter, self.candidate, self.kind, self.split, self.n_tasks, self.trials,
                None if self.score is None else round(self.score, 4), self.charged, self.reused, self.status,
                self.decision)


def format_row(row: LedgerRow) -> str:
    values = row.model_dump()
    values["score"] = "" if row.score is None else f"{row.score:.4f}"
    values["cost_usd"] = f"{row.cost_usd:.6f}"
    values["time"] = time.strftime(_TIME_FORMAT, time.localtime(row.time))
    values["note"] = " ".join(row.note.split())  # no tabs or newlines inside a cell
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerow([values[c] for c in LEDGER_COLUMNS])
    return buf.getvalue()


def parse_ledger(path: Path) -> list[LedgerRow]:
    """Every row of a ledger file; a bad header or row raises LedgerError naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise LedgerError(f"{path}: line {line} is not UTF-8 text; {_FIX}") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # a row a kill cut short (a resuming writer cuts it from the file)
    if not lines or lines[0] != LEDGER_HEADER:
        found = lines[0].strip().replace("\t", ",") if lines else "nothing"
        raise LedgerError(f"{path}: line 1 is not the ledger header (found {found[:80]!r}); {_FIX}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cells = next(csv.reader([line.rstrip("\n")], delimiter="\t"), [])
        if len(cells) != len(LEDGER_COLUMNS):
            raise LedgerError(f"{path}: line {number} has {len(cells)} cells, not {len(LEDGER_COLUMNS)}; {_FIX}")
        values: dict[str, object] = dict(zip(LEDGER_COLUMNS, cells))
        values["score"] = values["score"] or None
        try:
            values["time"] = time.mktime(time.strptime(str(values["time"]), _TIME_FORMAT))
            rows.append(LedgerRow.model_validate(values))
        except (ValueError, ValidationError) as exc:
            detail = exc.errors()[0] if isinstance(exc, ValidationError) else None
            what = f"{detail['loc'][0]}: {detail['msg']}" if detail else str(exc)
            raise LedgerError(f"{path}: line {number}: {what}; {_FIX}") from None
    return rows


_FIX = "restore the file, or delete it and `harnessopt optimize --resume` the run to rebuild it"
