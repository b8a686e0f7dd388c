"""What a meta model picked from the pools of proposal mode `rank`, from finished runs' transcripts.

Run from the repo root over experiment folders of `bench/meta_vs_random.py --proposal-mode rank`:
    python bench/rank_picks.py traces/bench/<experiment> ... [--contains "completion prompt" "similar labelled examples"]

For every iteration it reads the pool shown and the picks replied, and prints per arm:
- how often a pick is one of the pool's first k lines (k = picks per reply): the random control
  proposes exactly those under the shuffled order, and the digest ordering puts its best guesses there;
  a model that follows the order scores 100%, a model at chance k / pool size;
- with --contains, the share of pool lines that contain every phrase, and the share of picks that
  do: a model with judgement picks such lines more often than the pool holds them, if they are the
  lines that pay.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def iterations(run_dir: Path, only: int | None = None):
    """(pool lines by number, picks) per iteration transcript (only iteration `only` when given)."""
    for path in sorted((run_dir / "meta").glob("*.jsonl")):
        if only is not None and int(path.stem) != only:
            continue
        messages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        pool, picks = {}, []
        for m in messages:
            if m["role"] == "user" and "## Candidate changes" in m["content"]:
                block = m["content"].split("## Candidate changes")[1].split("\n", 1)[1].split("\n\n")[0]
                pool = {int(line.split(".")[0]): line.split(". ", 1)[1] for line in block.splitlines() if line[:1].isdigit()}
            if m["role"] == "assistant":
                try:
                    picks = [int(n) for n in json.loads(m["content"]).get("picks", [])]
                except (ValueError, AttributeError):
                    continue
        if pool and picks:
            yield pool, picks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiments", nargs="+", type=Path)
    p.add_argument("--contains", nargs="*", default=[], help="phrases a pool line must all contain to be counted")
    p.add_argument("--iteration", type=int, help="only this iteration (1: every pool line is a change of the seed)")
    args = p.parse_args()
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for exp in args.experiments:
        for run in sorted((exp / "runs").iterdir()):
            arm = run.name.rsplit("-seed", 1)[0]
            for pool, picks in iterations(run, args.iteration):
                s, k = stats[arm], len(picks)
                s["iterations"] += 1
                s["picks"] += k
                s["top"] += sum(1 for n in picks if n <= k)
                s["chance_top"] += k * k / len(pool)  # expected picks among the first k, picking at random
                hit = {n for n, line in pool.items() if args.contains and all(c in line for c in args.contains)}
                s["pool_lines"] += len(pool)
                s["pool_hits"] += len(hit)
                s["picked_hits"] += sum(1 for n in picks if n in hit)
    for arm, s in stats.items():
        line = (f"{arm}: {s['iterations']} iterations, {s['picks']} picks; among the pool's first k: {s['top']} "
                f"({s['top'] / s['picks']:.0%}; at chance {s['chance_top'] / s['picks']:.0%})")
        if args.contains:
            line += (f"; lines with {' + '.join(repr(c) for c in args.contains)}: {s['pool_hits'] / s['pool_lines']:.0%} "
                     f"of the pool, {s['picked_hits'] / s['picks']:.0%} of the picks")
        print(line)


if __name__ == "__main__":
    main()
