"""report.html: a static, self-contained trace viewer (one file, no server, no CDN).

The page is a jinja2 template with the viewer's CSS and vanilla JS inlined, and the run data
(summaries, ledger, events, candidates with code and diffs, every rollout's full trace, the
meta-agent's transcripts) embedded as JSON in a <script type="application/json"> element.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from harnessopt.report.data import RunData, load_traces
from harnessopt.report.experiment_data import ExperimentData
from harnessopt.report.plots import BEST_PNG, SPEND_PNG
from harnessopt.store import atomic_write

HERE = Path(__file__).parent


def _run_payload(run: RunData, *, arm: str = "", status: str = "") -> dict[str, Any]:
    traces = load_traces(run.path)
    return {
        "id": run.run_id, "arm": arm, "status": status,
        "summary": run.summary.model_dump(mode="json"),
        "config": run.info.get("config") or {k: run.info.get(k) for k in ("harness", "benchmark", "split", "task_model")},
        "ledger": [r.model_dump(mode="json") for r in run.ledger],
        "events": [e.model_dump(mode="json") for e in run.events],
        "candidates": [c.model_dump(mode="json") for c in run.candidates],
        "lineage": run.lineage,
        "notebook": run.notebook,
        "meta_transcripts": run.meta_transcripts,
        "rollouts": [t.model_dump(mode="json", exclude={"cache_key"}) for t in
                     sorted(traces, key=lambda t: (t.candidate_id, t.split, t.task_id, t.trial))],
    }


def _plots(directory: Path) -> dict[str, str]:
    out = {}
    for name in (BEST_PNG, SPEND_PNG):
        p = directory / name
        if p.is_file():
            out[name] = "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")
    return out


def render_html(payload: dict[str, Any]) -> str:
    from harnessopt import __version__

    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=False)
    data_json = json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":"))
    # Nothing inside the JSON may close the <script> element or open a comment.
    data_json = data_json.replace("</", "<\\/").replace("<!--", "<\\!--")
    return env.get_template("report.html.j2").render(
        title=html_lib.escape(payload["title"]), version=__version__,
        css=(HERE / "static" / "viewer.css").read_text(encoding="utf-8"),
        js=(HERE / "static" / "viewer.js").read_text(encoding="utf-8"),
        data_json=data_json,
    )


def write_run_html(run: RunData, path: Path) -> Path:
    payload = {"title": f"harnessopt · {run.run_id}", "experiment": None, "runs": [_run_payload(run)],
               "plots": _plots(Path(run.path))}
    atomic_write(path, render_html(payload))
    return path


def write_experiment_html(exp: ExperimentData, path: Path) -> Path:
    runs = [_run_payload(run, arm=exp.run_arm.get(rid, ""), status=exp.run_status.get(rid, ""))
            for rid, run in exp.runs.items()]
    experiment = {
        "id": exp.id, "spec": exp.spec, "models": exp.models, "budget_text": exp.budget_text,
        "arms": [a.model_dump(mode="json") for a in exp.arms],
        "comparisons": [c.model_dump(mode="json") for c in exp.comparisons],
    }
    payload = {"title": f"harnessopt · {exp.id}", "experiment": experiment, "runs": runs,
               "plots": _plots(Path(exp.path))}
    atomic_write(path, render_html(payload))
    return path
