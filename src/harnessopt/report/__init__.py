"""Reports for a run or an experiment: report.md, PNG plots and a self-contained report.html.

    from harnessopt.report import write_report
    paths = write_report("traces/<run or experiment dir>")

`data.py` loads run directories into records and derives the numbers; `markdown.py`, `plots.py`
and `html.py` only present them.
"""

from __future__ import annotations

from pathlib import Path

from harnessopt.errors import UsageError


def write_report(path: str | Path, *, html: bool = True, plots: bool = True) -> dict[str, Path]:
    """Write report.md (+ PNGs, report.html) into a run or experiment directory; returns the files."""
    from harnessopt.report.data import is_experiment_dir, is_run_dir, load_run
    from harnessopt.report.experiment_data import load_experiment
    from harnessopt.report.markdown import render_experiment_markdown, render_run_markdown
    from harnessopt.store import atomic_write

    path = Path(path)
    out: dict[str, Path] = {}
    if is_experiment_dir(path):
        exp = load_experiment(path)
        if plots:
            from harnessopt.report.plots import experiment_plots

            out.update(experiment_plots(exp, path))
        atomic_write(path / "report.md", render_experiment_markdown(exp, plots=sorted(p.name for p in out.values())))
        out["markdown"] = path / "report.md"
        if html:
            from harnessopt.report.html import write_experiment_html

            out["html"] = write_experiment_html(exp, path / "report.html")
    elif is_run_dir(path):
        run = load_run(path)
        if plots:
            from harnessopt.report.plots import run_plots

            out.update(run_plots(run, path))
        atomic_write(path / "report.md", render_run_markdown(run, plots=sorted(p.name for p in out.values())))
        out["markdown"] = path / "report.md"
        if html:
            from harnessopt.report.html import write_run_html

            out["html"] = write_run_html(run, path / "report.html")
    else:
        raise UsageError(f"{path}: neither a run directory (run.json, ledger.tsv) nor an experiment "
                         "directory (experiment.json); pass a directory that optimize, eval or compare wrote")
    return out


__all__ = ["write_report"]
