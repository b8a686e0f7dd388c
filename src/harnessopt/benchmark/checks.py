"""Data checks at load time: problems that would otherwise give wrong scores with no error.

* A classification target outside the label set is scored 0 even when the answer is right, so
  it fails loading, naming the label, where it came from and the fix.
* A classification split that covers few of the labels, or whose label mix differs from the
  other splits far more than a random split of its size would (a file sorted by label, sliced
  into splits), makes the optimizer chase the wrong thing; it gets a warning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from harnessopt.benchmark.spec import BenchmarkError
from harnessopt.records import LabelledTask

MIN_COVERAGE = 0.5  # a split should hold at least this share of the labels it has room for
MIN_TASKS_TO_COMPARE = 10  # smaller splits are too noisy to judge their label mix
_NULL_DRAWS = 200  # random splits drawn to learn how much label mix varies by chance
_NULL_QUANTILE = 0.99
_MIN_DISTANCE = 0.3  # total variation distance below this is never called sharp


class BenchmarkWarning(UserWarning):
    """A benchmark that loads but will likely mislead the optimizer (see `Benchmark.data_warnings`)."""


def check_targets_in_labels(name: str, tasks: Mapping[str, list[LabelledTask]], labels: list[str],
                            labels_source: str, origins: Mapping[str, str]) -> None:
    """Every target must be one of the labels (else scoring is silently wrong): BenchmarkError."""
    known = set(labels)
    for split, items in tasks.items():
        for task in items:
            if task.target not in known:
                where = origins.get(task.id, f"task {task.id}")
                raise BenchmarkError(
                    f"benchmark {name}: label {task.target!r} ({split} split, {where}) is not in the label set "
                    f"({labels_source or 'given'}, {len(labels)} labels); {_label_fix(labels_source)}"
                )


def _label_fix(labels_source: str) -> str:
    if labels_source.startswith("file "):
        return f"add it to {labels_source[5:]} or fix the row"
    if labels_source == "train targets":
        return ("list every label in a labels file ([labels] file = \"labels.json\" in the spec) "
                "or give the label train or search examples")
    if labels_source == "hub class names":
        return "fix the row, or list every label in a labels file ([labels] file = \"labels.json\")"
    return "add it to labels= or fix the item"


def split_mix_warnings(name: str, tasks: Mapping[str, list[LabelledTask]], labels: list[str],
                       seed: int = 0) -> list[str]:
    """One line per split whose labels are lopsided: far fewer distinct labels than a random split
    of its size would hold, or a label mix further from the other splits' than random splits of
    the same sizes ever get (a permutation test at the 99th percentile)."""
    out = []
    counts = {split: Counter(t.target for t in items) for split, items in tasks.items()}
    counts = {split: c for split, c in counts.items() if c.total() >= MIN_TASKS_TO_COMPARE}
    total = sum(counts.values(), Counter())
    few = set()
    for split, mine in counts.items():
        n = mine.total()
        # Distinct labels a random draw of n tasks would show, given the overall label mix.
        expected = sum(1 - (1 - c / total.total()) ** n for c in total.values())
        if expected >= 4 and len(mine) < MIN_COVERAGE * expected:
            few.add(split)
            top, top_n = mine.most_common(1)[0]
            out.append(f"benchmark {name}: the {split} split has {len(mine)} of {len(labels)} labels in {n} tasks "
                       f"({top_n} are {top!r}; a random split of its size would have about {expected:.0f}); "
                       "if the data is sorted by label, shuffle it before splitting")
    for split, mine in counts.items():
        # A split already flagged is left out of the others' comparison: one cause, one warning.
        rest = sum((c for s, c in counts.items() if s != split and s not in few), Counter())
        if split in few or rest.total() < MIN_TASKS_TO_COMPARE:
            continue
        distance = _tv_distance(mine, rest)
        chance = _chance_distance(mine, rest, seed=f"{seed}:{split}")
        if distance > max(_MIN_DISTANCE, chance):
            gap = max(mine | rest, key=lambda lab: abs(_share(mine, lab) - _share(rest, lab)))
            out.append(f"benchmark {name}: the {split} split's label mix differs sharply from the other splits "
                       f"(distance {distance:.2f}; random splits of these sizes stay under {chance:.2f}: "
                       f"{gap!r} is {_share(mine, gap):.0%} of {split} but {_share(rest, gap):.0%} elsewhere); "
                       "check how the splits were made")
    return out


def _share(counts: Counter, label: str) -> float:
    return counts.get(label, 0) / counts.total() if counts.total() else 0.0


def _tv_distance(a: Counter, b: Counter) -> float:
    """Total variation distance between two label distributions (0 same mix, 1 disjoint)."""
    return 0.5 * sum(abs(_share(a, lab) - _share(b, lab)) for lab in set(a) | set(b))


def _chance_distance(mine: Counter, rest: Counter, seed: str) -> float:
    """The distance two random splits of the same sizes reach by chance (its 99th percentile)."""
    import numpy as np

    index = {lab: i for i, lab in enumerate(mine | rest)}
    pooled = np.repeat(np.arange(len(index)), [(mine + rest)[lab] for lab in index])
    n = mine.total()
    rng = np.random.default_rng(list((seed + ":" + "harnessopt-split-mix").encode()))
    distances = []
    for _ in range(_NULL_DRAWS):
        rng.shuffle(pooled)
        a = np.bincount(pooled[:n], minlength=len(index)) / n
        b = np.bincount(pooled[n:], minlength=len(index)) / (len(pooled) - n)
        distances.append(0.5 * float(np.abs(a - b).sum()))
    return float(np.quantile(distances, _NULL_QUANTILE))
