"""report.md for a run or an experiment (jinja2 templates in templates/)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from harnessopt.report.data import RunData
from harnessopt.report.experiment_data import ExperimentData

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["f3"] = lambda x: "-" if x is None else f"{x:.3f}"
    env.filters["signed"] = lambda x: "-" if x is None else f"{x:+.3f}"
    env.filters["ci"] = lambda c: "-" if not c else f"{c[0]:.3f}-{c[1]:.3f}"
    env.filters["sci"] = lambda c: "-" if not c else f"{c[0]:+.3f}..{c[1]:+.3f}"
    env.filters["usd"] = lambda x: "-" if x is None else f"${x:.4f}"
    env.filters["n0"] = lambda x: "-" if x is None else f"{x:,.0f}"
    env.filters["pct"] = lambda x: "-" if x is None else f"{100 * x:.0f}%"
    env.filters["p"] = lambda x: f"{x:.3g}"
    env.filters["cell"] = _cell
    return env


def _cell(text: Any, n: int = 120) -> str:
    """A markdown table cell: one line, pipes escaped, clipped."""
    s = " ".join(str(text if text is not None else "").split()).replace("|", "\\|")
    return s if len(s) <= n else s[: n - 1] + "…"


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside the text."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _lineage(run: RunData) -> list[dict[str, Any]]:
    cands = {c.id: c for c in run.candidates}
    out = []
    for cid in run.lineage:
        c = cands[cid]
        out.append({"c": c, "fence": _fence(c.diff)})
    return out


def render_run_markdown(run: RunData, *, plots: list[str] | None = None) -> str:
    return _env().get_template("run.md.j2").render(run=run, s=run.summary, lineage=_lineage(run),
                                                  plots=plots or [], standalone=True)


def render_experiment_markdown(exp: ExperimentData, *, plots: list[str] | None = None) -> str:
    lineages = {rid: _lineage(run) for rid, run in exp.runs.items()}
    status_counts = dict(Counter(exp.run_status.values()))
    return _env().get_template("experiment.md.j2").render(exp=exp, lineages=lineages, plots=plots or [],
                                                          status_counts=status_counts)
