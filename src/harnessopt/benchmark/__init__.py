"""Benchmarks: a TOML spec, tasks loaded with `datasets`, seeded splits and a scorer.

A spec (see docs/BENCHMARKS.md) says where the data comes from (a hub id and/or local files),
which columns make a task (input, target, id, extra fields the harness may see, hidden fields only
the scorer sees), the label set, how the source splits map onto harnessopt's three splits
(``train`` — labelled examples harnesses may read; ``search`` — what the optimizer scores
candidates on; ``test`` — held out, evaluated once at the end) and which scorer to use.

    bench = load_benchmark("banking77", data="../shared/data/banking77")
    bench.tasks("test", limit=100)     # seeded shuffle, so a prefix mixes labels
    bench.score(task, "card_arrival")  # -> Score

Everything here is deterministic for a given (spec, data, seed): carve-outs, task order, ids and
the fingerprint. Nothing is cached on disk beyond what `datasets` caches itself.

    spec.py     the spec's schema, reading it, finding specs by name
    sources.py  reading rows from files or the hub
    tasks.py    rows to tasks, the seeded carve into splits, the label set
    checks.py   data checks at load: targets outside the label set, lopsided splits
    loaded.py   `Benchmark` (a loaded benchmark) and `load_benchmark`
"""

from harnessopt.benchmark.loaded import Benchmark, load_benchmark
from harnessopt.benchmark.spec import (
    SPLITS,
    BenchmarkError,
    BenchmarkSpec,
    FieldsSpec,
    LabelsSpec,
    ScorerSpec,
    SourceSpec,
    SplitRef,
    benchmark_dirs,
    known_benchmarks,
    load_spec,
    resolve_spec_path,
)

__all__ = [
    "SPLITS",
    "Benchmark",
    "BenchmarkError",
    "BenchmarkSpec",
    "SourceSpec",
    "FieldsSpec",
    "LabelsSpec",
    "SplitRef",
    "ScorerSpec",
    "load_benchmark",
    "load_spec",
    "known_benchmarks",
    "resolve_spec_path",
    "benchmark_dirs",
]
