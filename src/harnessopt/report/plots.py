"""PNG plots with matplotlib (Agg backend: no display needed).

- best_search_vs_rollouts.png: the champion's search score against charged search rollouts;
  per arm the mean over seeds as a line and the seeds' min-max as a band.
- spend.png: per arm (or for a run): charged rollouts by kind, tokens and USD, task vs meta side.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from harnessopt.report.data import RunData, RunSummary
from harnessopt.report.experiment_data import ExperimentData

BEST_PNG = "best_search_vs_rollouts.png"
SPEND_PNG = "spend.png"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _step_at(curve: list[tuple[int, float]], x: float) -> float | None:
    """The champion's score after x rollouts (the last point at or before x)."""
    value = None
    for rollouts, score in curve:
        if rollouts <= x:
            value = score
        else:
            break
    return value


def _curve(s: RunSummary) -> list[tuple[int, float]]:
    return [(p.rollouts, p.score) for p in s.curve]


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)
    return path


def _spend_by_kind(run: RunData) -> dict[str, int]:
    out = {"baseline": 0, "spot": 0, "full": 0, "test": 0}
    for r in run.ledger:
        if r.kind == "test":
            out["test"] += r.charged
        elif r.decision in ("baseline", "noise"):
            out["baseline"] += r.charged
        elif r.kind in ("spot", "full"):
            out[r.kind] += r.charged
    return out


def experiment_plots(exp: ExperimentData, out_dir: Path) -> dict[str, Path]:
    plt = _plt()
    import numpy as np

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    any_curve = False
    for i, arm in enumerate(exp.arms):
        runs = [exp.runs[r] for r, a in exp.run_arm.items() if a == arm.name and r in exp.runs]
        curves = [_curve(r.summary) for r in runs if r.summary.curve]
        if not curves:
            continue
        any_curve = True
        color = colors[i % len(colors)]
        xmax = max(c[-1][0] for c in curves)
        xs = np.unique(np.concatenate([[0], np.linspace(0, xmax, 200), [p[0] for c in curves for p in c]]))
        values = np.array([[(_step_at(c, x) if _step_at(c, x) is not None else np.nan) for x in xs] for c in curves])
        with warnings.catch_warnings():  # columns before a seed's first point are all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        label = f"{arm.name} ({len(curves)} seed{'s' if len(curves) != 1 else ''})"
        # distinct dashes and widths: arms with identical curves stay visible on top of each other
        ax.step(xs, mean, where="post", color=color, label=label, linewidth=max(1.2, 3.2 - 0.5 * i),
                linestyle=("-", "--", ":", "-.")[i % 4])
        if len(curves) > 1:
            ax.fill_between(xs, low, high, step="post", color=color, alpha=0.18, linewidth=0)
    ax.set_xlabel("charged search rollouts")
    ax.set_ylabel("champion search score")
    ax.set_title("Best search score vs rollouts (line: mean over seeds; band: seeds' min-max)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if any_curve:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no finished search evaluations yet", ha="center", transform=ax.transAxes)
    best = _save(fig, out_dir / BEST_PNG)
    plt.close(fig)

    names = [a.name for a in exp.arms]
    kinds = ["baseline", "spot", "full", "test"]
    per_arm = {k: [] for k in kinds}
    tokens_task, tokens_meta, usd_task, usd_meta = [], [], [], []
    for arm in exp.arms:
        runs = [exp.runs[r] for r, a in exp.run_arm.items() if a == arm.name and r in exp.runs and exp.runs[r].summary.finished]
        n = max(1, len(runs))
        spends = [_spend_by_kind(r) for r in runs]
        for k in kinds:
            per_arm[k].append(sum(s[k] for s in spends) / n)
        tokens_task.append(sum(r.summary.task_tokens for r in runs) / n)
        tokens_meta.append(sum(r.summary.meta_tokens for r in runs) / n)
        usd_task.append(sum(r.summary.task_usd for r in runs) / n)
        usd_meta.append(sum(r.summary.meta_usd for r in runs) / n)
    fig = _spend_figure(plt, names, per_arm, tokens_task, tokens_meta, usd_task, usd_meta, "mean per run")
    spend = _save(fig, out_dir / SPEND_PNG)
    plt.close(fig)
    return {"plot_best": best, "plot_spend": spend}


def _spend_figure(plt, names, per_kind, tokens_task, tokens_meta, usd_task, usd_meta, what: str):
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(max(10, 2.2 * len(names) + 6), 4.2))
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for kind, values in per_kind.items():
        axes[0].bar(x, values, bottom=bottom, label="test (outside the search budget)" if kind == "test" else kind)
        bottom += np.asarray(values, dtype=float)
    axes[0].set_title(f"rollouts by kind ({what})")
    w = 0.38
    axes[1].bar(x - w / 2, tokens_task, w, label="task")
    axes[1].bar(x + w / 2, tokens_meta, w, label="meta")
    axes[1].set_title(f"tokens ({what})")
    axes[2].bar(x - w / 2, usd_task, w, label="task")
    axes[2].bar(x + w / 2, usd_meta, w, label="meta")
    axes[2].set_title(f"USD ({what})")
    if not any(usd_task) and not any(usd_meta):
        axes[2].set_ylim(0, 1)
        axes[2].text(0.5, 0.5, "$0\n(local model or no known price)", ha="center", transform=axes[2].transAxes)
    for ax in axes:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def run_plots(run: RunData, out_dir: Path) -> dict[str, Path]:
    plt = _plt()
    s = run.summary
    fig, ax = plt.subplots(figsize=(7, 4.2))
    curve = _curve(s)
    if curve:
        xs = [p[0] for p in curve]
        ys = [p[1] for p in curve]
        ax.step(xs, ys, where="post", linewidth=2, label="champion")
        full = [(r.cum_rollouts, r.score) for r in run.ledger if r.kind == "full" and r.split == "search"]
        ax.scatter([p[0] for p in full], [p[1] for p in full], s=18, color="gray", zorder=3, label="full evaluations")
        spots = [(r.cum_rollouts, r.score) for r in run.ledger if r.kind == "spot"]
        if spots:
            ax.scatter([p[0] for p in spots], [p[1] for p in spots], s=14, marker="x", color="tab:orange",
                       zorder=3, label="spot-checks")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no search evaluations", ha="center", transform=ax.transAxes)
    ax.set_xlabel("charged search rollouts")
    ax.set_ylabel("search score")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{s.run_id}: best search score vs rollouts")
    ax.grid(alpha=0.3)
    best = _save(fig, out_dir / BEST_PNG)
    plt.close(fig)
    spends = _spend_by_kind(run)
    fig = _spend_figure(plt, [s.run_id[-24:]], {k: [v] for k, v in spends.items()}, [s.task_tokens],
                        [s.meta_tokens], [s.task_usd], [s.meta_usd], "this run")
    spend = _save(fig, out_dir / SPEND_PNG)
    plt.close(fig)
    return {"plot_best": best, "plot_spend": spend}
