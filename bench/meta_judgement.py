"""Can a meta model tell which of two harness changes scores higher? A pairwise probe on finished runs.

Run from the repo root, over experiment folders of `bench/meta_vs_random.py`:
    python bench/meta_judgement.py traces/bench/<experiment> ... --model local/qwen2.5-coder-1.5b --pairs 24

From each run it takes the candidates made on the seed (parent c0000) that were screened or fully
evaluated, and says what each harness does (the same words as a rank-mode pool line). It pairs
candidates of one run whose scores differ by at least --gap, shows the model the run's failure digest
of the seed and the task-model line (what the meta model saw in iteration 1) and the two
descriptions in a random order, and asks which will score higher. Prints the share answered right
and an exact one-sided binomial p-value against guessing. `--both-orders` asks every pair twice, once
in each order: a model that names the same letter both times follows the position, not the harnesses,
and only a pair answered right in both orders counts as judged right. `--logprob` (embedded models) reads,
instead of a sampled letter, log P("A") - log P("B") for the reply's first token in both orders; their
difference cancels a fixed lean toward one slot, and its sign is the model's judgement. One benchmark per invocation: runs of the
random control borrow the seed's digest from an LLM run. A model at chance cannot rank a pool
better than the random control's order, whatever the protocol around it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harnessopt.llm.gateway import Gateway  # noqa: E402
from harnessopt.llm.local import get_local_model  # noqa: E402
from harnessopt.meta.digest import Cluster, Digest, cluster_name  # noqa: E402
from harnessopt.meta.draws import addressed_by_change, what_it_does  # noqa: E402
from harnessopt.meta.menu import ADDRESSES  # noqa: E402
from harnessopt.records import ModelParams  # noqa: E402
from harnessopt.store import RunStore  # noqa: E402

QUESTION = "Which harness will score higher on this benchmark with this task model? Reply with one letter, A or B."


def score_of(store: RunStore, cid: str) -> float | None:
    rows = [r for r in store.ledger() if r.candidate == cid and r.kind in ("full", "spot")]
    fulls = [r for r in rows if r.kind == "full"]
    return (fulls or rows)[-1].score if rows else None


def run_material(run_dir: Path, shape: str) -> tuple[str | None, str, list[tuple[str, float, str]]]:
    """The iteration-1 brief's task-model line and digest (None for the random control, which has
    no brief), and (description, score) per candidate on the seed."""
    store = RunStore.open(run_dir)
    brief = next((m["content"] for m in store.transcripts().get("001", []) if m["role"] == "user"), "")
    context = None
    if "## Failure digest of the champion" in brief:
        task_line = next((line for line in brief.splitlines() if line.startswith("Task model:")), "")
        digest = brief.split("## Failure digest of the champion")[1].split("\n## ")[0].strip()
        context = f"{task_line}\nFailure digest of the current harness:\n{digest}"
    out = []
    for c in store.candidates():
        if c.parent != "c0000" or c.id == "c0000":
            continue
        score = score_of(store, c.id)
        if score is not None:
            source = store.candidate_source(c.id)
            out.append((what_it_does(source, shape), score, source))
    return context, store.candidate_source("c0000"), out


def digest_heuristic(context: str, seed_source: str, a: str, b: str, shape: str) -> str:
    """What `--menu-order digest` would say (`draws.addressed_by_change`, with the cluster counts read
    off the digest's lines): the harness whose added patterns address more counted failures, "A",
    "B" or "tie"."""
    clusters = [Cluster(key=key, name=cluster_name(key), count=int(line.split(": ")[-1].split("/")[0]))
                for key in ADDRESSES for line in context.splitlines() if line.startswith(f"- {cluster_name(key)}: ")]
    digest = Digest(candidate="c0000", rollouts=0, failed=0, score=0.0, clusters=clusters)
    ha, hb = (sum(n for _, n in addressed_by_change(src, seed_source, digest, shape)) for src in (a, b))
    return "A" if ha > hb else "B" if hb > ha else "tie"


def pairs_of(material: list[tuple[str, str, list[tuple[str, float, str]]]], gap: float, n: int, rng: random.Random):
    pool = []
    for context, seed, cands in material:
        for i, a in enumerate(cands):
            for b in cands[i + 1:]:
                if abs(a[1] - b[1]) >= gap and a[0] != b[0]:
                    pool.append((context, seed, a, b))
    rng.shuffle(pool)
    return pool[:n]


def pair_prompt(context: str, first, second) -> list[dict[str, str]]:
    """The question put to a model judge: the digest, then harness A (first) and B (second)."""
    return [{"role": "user", "content": f"{context}\n\nTwo candidate harnesses:\nA: {first[0]}\nB: {second[0]}\n\n{QUESTION}"}]


def binomial_p(right: int, total: int, odds: int = 2) -> float:
    """P(at least `right` of `total` by guessing, where a guess is right with chance 1/odds: 1/2 for
    one question, 1/4 for a pair asked in both orders)."""
    q = 1 / odds
    return sum(math.comb(total, k) * q ** k * (1 - q) ** (total - k) for k in range(right, total + 1))


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiments", nargs="+", type=Path)
    p.add_argument("--model", default="local/qwen2.5-coder-1.5b",
                   help="a model, or 'digest': the digest-ordered pool's heuristic, no model")
    p.add_argument("--pairs", type=int, default=24)
    p.add_argument("--gap", type=float, default=0.5, help="least score difference of a pair")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--logprob", action="store_true",
                   help="embedded models: judge by the first token's log-probabilities in both orders, no sampling")
    p.add_argument("--both-orders", action="store_true",
                   help="ask every pair in both orders; right only if right both times")
    p.add_argument("--task-shape", default="classification", help="the benchmarks' task shape")
    args = p.parse_args()
    material = [run_material(run, args.task_shape) for exp in args.experiments for run in sorted((exp / "runs").iterdir())]
    # The seed's digest is the same in every run of one benchmark (same seed harness, search tasks,
    # greedy task model): runs without a brief (random search) borrow it.
    shown = next((context for context, _, _ in material if context), None)
    if shown is None:
        raise SystemExit("no run with an LLM brief among these experiments: add one of the same benchmark")
    material = [(context or shown, seed, cands) for context, seed, cands in material]
    rng = random.Random(0)
    pairs = pairs_of(material, args.gap, args.pairs, rng)
    if not pairs:
        raise SystemExit("no pair of candidates on the seed differs by --gap; lower it or add runs")
    if args.logprob:
        if not args.model.startswith("local/"):
            raise SystemExit(f"--logprob reads an embedded model's logits; --model {args.model} is not a local/... model")
        await logprob_probe(args, pairs)
        return
    gw, right, t0 = Gateway(), 0, time.time()
    outcomes: list[str] = []
    for i, (context, seed, hi, lo) in enumerate(pairs):
        better, worse = (hi, lo) if hi[1] > lo[1] else (lo, hi)
        orders = [(better, worse), (worse, better)] if args.both_orders else \
            [(better, worse) if i % 2 == 0 else (worse, better)]
        said = [await judge(gw, args, context, seed, first, second, i) for first, second in orders]
        truth = ["A" if first is better else "B" for first, _ in orders]
        ok = said == truth
        right += ok
        outcomes.append(outcome(said, truth))
        print(f"{i:3d} {outcomes[-1]:8s} said {'/'.join(said)!r}: {better[0]} ({better[1]:.2f}) vs {worse[0]} ({worse[1]:.2f})",
              flush=True)
    total = len(pairs)
    ties = "" if args.model != "digest" else " (a tie counts as wrong)"
    asked = " in both orders" if args.both_orders else ""
    print(f"{args.model}: {right}/{total} right{asked}{ties} ({right / total:.0%}), one-sided p vs guessing "
          f"{binomial_p(right, total, 4 if args.both_orders else 2):.3f}, {time.time() - t0:.0f} s")
    if args.both_orders:
        print("per pair: " + ", ".join(f"{k} {outcomes.count(k)}" for k in ("right", "wrong", "position", "other")))


async def logprob_probe(args: argparse.Namespace, pairs) -> None:
    """Each pair in both orders; the model's preference for the better harness is
    (lp(A) - lp(B) with the better one as A) - (the same with it as B): a lean toward one slot cancels."""
    model = get_local_model(args.model)
    right, leans, t0 = 0, [], time.time()
    for i, (context, _seed, hi, lo) in enumerate(pairs):
        better, worse = (hi, lo) if hi[1] > lo[1] else (lo, hi)
        margins = []
        for first, second in ((better, worse), (worse, better)):
            lp_a, lp_b = await asyncio.to_thread(model.option_logprobs, pair_prompt(context, first, second), ["A", "B"])
            margins.append(lp_a - lp_b)
        preference = margins[0] - margins[1]
        leans.append((margins[0] + margins[1]) / 2)
        right += preference > 0
        print(f"{i:3d} {'right' if preference > 0 else 'wrong'} preference {preference:+.3f} (lean to A {leans[-1]:+.2f}): "
              f"{better[0]} ({better[1]:.2f}) vs {worse[0]} ({worse[1]:.2f})", flush=True)
    total = len(pairs)
    print(f"{args.model} by log-probabilities, both orders: {right}/{total} right ({right / total:.0%}), one-sided p vs "
          f"guessing {binomial_p(right, total):.3f}; mean lean toward A {sum(leans) / total:+.2f} nats; {time.time() - t0:.0f} s")


async def judge(gw: Gateway, args: argparse.Namespace, context: str, seed: str, first, second, i: int) -> str:
    """The letter the judge names for "which of A (first) and B (second) scores higher"."""
    if args.model == "digest":
        return digest_heuristic(context, seed, first[2], second[2], args.task_shape)
    reply = await gw.chat(args.model, pair_prompt(context, first, second),
                          ModelParams(temperature=args.temperature, max_tokens=2, seed=i))
    return reply.text.strip()[:1].upper()


def outcome(said: list[str], truth: list[str]) -> str:
    """right / wrong (in every order asked), position (one letter whatever the order), other."""
    if said == truth:
        return "right"
    if all(s in ("A", "B") and s != t for s, t in zip(said, truth)):
        return "wrong"
    if len(said) == 2 and said[0] == said[1] and said[0] in ("A", "B"):
        return "position"
    return "other"


if __name__ == "__main__":
    asyncio.run(main())
