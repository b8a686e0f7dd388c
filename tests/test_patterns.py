"""The pattern library: every pattern on every shipped harness validates and runs (stub model);
composition through the embedded recipe; no benchmark ids or answers in generated code; the
meta-agent's list_patterns / apply_pattern actions."""

from __future__ import annotations

import ast
import asyncio
import json
import random
import re
from pathlib import Path

import pytest

from harnessopt.benchmark import Benchmark, load_benchmark
from harnessopt.budget import Budget
from harnessopt.evaluation import evaluate_async
from harnessopt.harness import harness_from_source
from harnessopt.meta import actions as A
from harnessopt.optimizer import OptimizeConfig, optimize_async
from harnessopt.patterns import (
    PATTERN_NAMES, PATTERNS, PatternError, applicable, apply_pattern, default_recipe, describe_patterns,
    embedded_recipe, recipe_for_source, render_harness,
)
from harnessopt.records import LLMResponse, ModelParams
from harnessopt.store import RunStore
from scripted import ScriptedProposer
from stubs import StubGateway

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {  # shipped harness -> its benchmark's task shape
    "banking77_naive.py": "classification", "banking77_fewshot.py": "classification",
    "home_intents_naive.py": "classification", "home_intents_fewshot.py": "classification",
    "gsm8k_naive.py": "math", "humaneval_naive.py": "code",
}


def shipped(name: str) -> str:
    return (REPO / "harnesses" / name).read_text()


# --------------------------------------------------------------------------- tiny benchmarks per shape

LABELS = ["lights_on", "play_music", "set_alarm"]


def tiny(shape: str) -> Benchmark:
    if shape == "classification":
        train = [{"input": "turn on the lights", "target": "lights_on"}, {"input": "play some jazz", "target": "play_music"},
                 {"input": "wake me at six", "target": "set_alarm"}]
        tasks = [{"input": text, "target": target} for text, target in
                 [("lights please", "lights_on"), ("music now", "play_music"), ("alarm at 7", "set_alarm")]]
        return Benchmark.from_records("tiny_cls", train=train, search=tasks, test=tasks, scorer="label",
                                      task_shape="classification", labels=LABELS)
    if shape in ("math", "short_answer"):
        train = [{"input": "Tom has 2 apples and buys 3. How many?", "target": "5",
                  "extra": {"answer": "He has 2+3=<<2+3=5>>5 apples.\n#### 5"}},
                 {"input": "A box holds 4 pens. How many pens in 2 boxes?", "target": "8",
                  "extra": {"answer": "2*4=<<2*4=8>>8\n#### 8"}}]
        tasks = [{"input": f"What is {i} plus {i}?", "target": str(2 * i)} for i in range(1, 4)]
        return Benchmark.from_records(f"tiny_{shape}", train=train, search=tasks, test=tasks,
                                      scorer="numeric" if shape == "math" else "normalized_exact", task_shape=shape)
    prompt = 'def add(a, b):\n    """Add two numbers."""\n'
    train = [{"input": 'def sub(a, b):\n    """Subtract."""\n', "target": "    return a - b\n", "extra": {"entry_point": "sub"}}]
    tasks = [{"input": prompt, "target": "    return a + b\n", "extra": {"entry_point": "add"}}]
    test = "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    return Benchmark.from_records("tiny_code", train=train, search=tasks, test=tasks, task_shape="code",
                                  scorer="python_tests", hidden={f"tiny_code-{split}-00000": {"test": test}
                                                                 for split in ("search", "test")})


def smart_reply(prompt: str) -> str:
    """A stub 'model' that gives a plausible answer for any shape and prompt mode."""
    lines = [line for line in prompt.splitlines() if line.strip() and not line.startswith("Label:")]
    if "```python" in prompt[-40:] or "Python program" in prompt:
        return "x = 2 + 2\nprint(x)\n```"
    if "def add" in prompt:
        return "    return a + b\n"
    if "plus" in prompt:
        n = int(re.findall(r"What is (\d+) plus", prompt)[-1])
        return f" {n}+{n}=<<{n}+{n}={2 * n}>>{2 * n}\n#### {2 * n}"
    for line in reversed(lines):  # the query is the last line that names a device
        for word, label in (("lights", "lights_on"), ("music", "play_music"), ("alarm", "set_alarm")):
            if word in line.split("=>")[0]:
                return f" {label}"
    return " lights_on"


async def _eval(source: str, shape: str, tmp_path: Path, gateway=None):
    gateway = gateway or StubGateway(smart_reply)
    return await evaluate_async(harness_from_source(source, "gen.py"), tiny(shape), split="test", out=tmp_path,
                                gateway=gateway, concurrency=2)


def evaluate_source(source: str, shape: str, tmp_path: Path, gateway=None):
    return asyncio.run(_eval(source, shape, tmp_path, gateway))


# --------------------------------------------------------------------------- every pattern x every shipped harness


@pytest.mark.parametrize("harness", sorted(SHIPPED))
def test_every_pattern_on_every_shipped_harness_validates_and_runs(harness, tmp_path):
    shape = SHIPPED[harness]
    source = shipped(harness)
    sources = {}
    for pattern in applicable(shape):
        result = apply_pattern(source, pattern.name, {}, shape)
        harness_from_source(result.source)  # static validation
        assert result.recipe.applied[-1].startswith(pattern.name)
        assert embedded_recipe(result.source) == result.recipe  # the file carries its recipe
        sources[pattern.name] = result.source
    # plus everything at once (composition), applied in a random order
    names = [p.name for p in applicable(shape) if p.name != "chat_mode"]
    random.Random(0).shuffle(names)
    stacked = source
    for name in names:
        try:
            stacked = apply_pattern(stacked, name, {}, shape).source
        except PatternError as exc:  # the hand-written few-shot harnesses already do some
            assert "does not change" in str(exc) and "fewshot" in harness
    sources["all"] = stacked
    if "naive" in harness:
        assert len(set(sources.values())) == len(sources)  # every pattern changes something
    # run all of them in one evaluation round each (stub model)
    async def run_all():
        return {name: await _eval(src, shape, tmp_path / name) for name, src in sources.items()}
    results = asyncio.run(run_all())
    for name, r in results.items():
        assert r.n_errors == 0 and r.n_timeouts == 0, f"{harness} + {name} failed"
        assert r.n_rollouts == len(tiny(shape).tasks("test"))
    if shape == "classification":
        assert results["all"].score == 1.0


def test_pattern_applicability_and_parameter_errors():
    naive = shipped("gsm8k_naive.py")
    with pytest.raises(PatternError, match="applies to classification"):
        apply_pattern(naive, "label_constraint", {}, "math")
    with pytest.raises(PatternError, match="unknown pattern"):
        apply_pattern(naive, "magic", {}, "math")
    with pytest.raises(PatternError, match=r"invalid params \(k: .*less than or equal to 32"):
        apply_pattern(naive, "retrieval_fewshot", {"k": 100}, "math")
    with pytest.raises(PatternError, match="invalid params.*params are k"):
        apply_pattern(naive, "retrieval_fewshot", {"shots": 3}, "math")
    with pytest.raises(PatternError, match="does not fit a math task"):
        apply_pattern(naive, "format_repair", {"extract": "code"}, "math")
    once = apply_pattern(naive, "self_consistency", {"n": 3}, "math").source
    with pytest.raises(PatternError, match="does not change the harness"):
        apply_pattern(once, "self_consistency", {"n": "3"}, "math")  # lax: "3" is 3
    prompt_patterns = {name for name in PATTERN_NAMES if "agent" not in PATTERNS[name].shapes}
    assert {p.name for p in applicable("code")} == prompt_patterns - {"label_constraint", "self_consistency", "tool_use"}


def test_composition_keeps_earlier_patterns_and_reapplying_replaces_its_part():
    src = shipped("banking77_naive.py")
    r1 = apply_pattern(src, "retrieval_fewshot", {"k": 8}, "classification")
    assert not r1.from_recipe and "replaces it wholesale" in r1.note
    r2 = apply_pattern(r1.source, "label_constraint", {"mode": "grammar"}, "classification")
    r3 = apply_pattern(r2.source, "self_consistency", {"n": 3}, "classification")
    r4 = apply_pattern(r3.source, "retrieval_fewshot", {"k": 4, "order": "best_first"}, "classification")
    assert r2.from_recipe and "on the parent's recipe" in r2.note
    rec = embedded_recipe(r4.source)
    assert rec.retrieval.k == 4 and rec.retrieval.order == "best_first"
    assert rec.labels.mode == "grammar" and rec.vote.n == 3 and rec.max_tokens == 32
    assert [a.split("(")[0] for a in rec.applied] == ["retrieval_fewshot", "label_constraint", "self_consistency",
                                                       "retrieval_fewshot"]
    assert "K_SHOTS = 4" in r4.source and "VOTES = 3" in r4.source and '"enum": list(ctx.labels)' in r4.source
    assert "reversed(shots)" not in r4.source  # best_first
    # the rendering is a pure function of the recipe
    assert render_harness(rec) == r4.source
    # a harness whose RECIPE was removed is hand-written again
    stripped = re.sub(r"\nRECIPE = \{.*?\]\}\n", "\n", r4.source, flags=re.S)
    assert embedded_recipe(stripped) is None and "RECIPE =" not in stripped


def test_hand_written_harnesses_give_a_starting_recipe_from_their_code():
    few, embedded = recipe_for_source(shipped("banking77_fewshot.py"), "classification")
    assert not embedded and few.prompt_mode == "completion" and few.retrieval.k == 8
    assert few.retrieval.order == "best_last" and few.labels is not None
    naive, _ = recipe_for_source(shipped("banking77_naive.py"), "classification")
    # the shape's default recipe, carrying the seed's own instruction instead of a generic one
    assert naive.task_wording == ("What is the intent of this banking customer message? "
                                  "Reply with the intent label only.")
    assert naive.model_copy(update={"task_wording": None}) == default_recipe("classification")
    assert naive.prompt_mode == "chat" and few.task_wording is None  # the few-shot seed has no instruction
    # applying a pattern to the hand-written few-shot harness keeps what it already did
    out = embedded_recipe(apply_pattern(shipped("banking77_fewshot.py"), "self_consistency", {}, "classification").source)
    assert out.retrieval.k == 8 and out.prompt_mode == "completion" and out.labels and out.vote


def test_generated_code_reads_like_a_harness():
    src = shipped("banking77_naive.py")
    for name in ("retrieval_fewshot", "completion_mode", "label_constraint"):
        src = apply_pattern(src, name, {}, "classification").source
    tree = ast.parse(src)
    doc = ast.get_docstring(tree)
    assert "retrieve the 8 most similar" in doc and "completion prompt" in doc and "label set" in doc
    funcs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert funcs[0] == "run" and "to_label" in funcs and "majority" not in funcs  # only what it uses
    assert "import harnessopt" not in src and "ctx.labels" in src
    assert max(len(line) for line in src.splitlines()) <= 130



def _compositions(shape: str, seed_source: str, rounds: int = 12) -> list[str]:
    """Generated harnesses for `shape`: each pattern alone, then random stacks with random params."""
    rng = random.Random(11)
    outs = [apply_pattern(seed_source, p.name, {}, shape).source for p in applicable(shape)]
    for _ in range(rounds):
        src = seed_source
        for pattern in rng.sample(applicable(shape), rng.randint(2, 5)):
            try:
                src = apply_pattern(src, pattern.name, pattern.sample(rng, shape), shape).source
            except PatternError:
                pass
        outs.append(src)
    return outs


@pytest.mark.parametrize("harness", ["home_intents_naive.py", "gsm8k_naive.py", "humaneval_naive.py",
                                     "banking77_fewshot.py"])
def test_generated_code_holds_only_what_it_uses(harness):
    shape = SHIPPED[harness]
    for src in _compositions(shape, shipped(harness)):
        tree = ast.parse(src)
        # names read anywhere, except a function's reads of its own parameters
        loads = {n.id for f in tree.body for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                 and not (isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.id in {a.arg for a in f.args.args})}
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                assert all(a.name in loads for a in node.names), f"unused import in:\n{src}"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.name == "run" or node.name in loads, f"{node.name} is never called in:\n{src}"
                body = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                params = [a.arg for a in node.args.args] + ([node.args.kwarg.arg] if node.args.kwarg else [])
                unused = [a for a in params if a not in body]
                assert not unused, f"{node.name} never uses {unused} in:\n{src}"
            elif isinstance(node, ast.Assign) and node.targets[0].id != "RECIPE":
                assert node.targets[0].id in loads, f"{node.targets[0].id} is never used in:\n{src}"
        assert "shots = []" not in src and ", {})" not in src
        assert ("labels=ctx.labels or []" in src) == ("{{ labels" in src)  # passed only to a prompt that lists them


def test_generated_file_reads_top_down_and_keeps_the_seeds_wording():
    src = shipped("home_intents_naive.py")
    for name in ("retrieval_fewshot", "label_constraint"):
        src = apply_pattern(src, name, {}, "classification").source
    tree = ast.parse(src)
    statements = [n for n in tree.body if not isinstance(n, (ast.Import, ast.Expr))]
    assert statements[0].targets[0].id == "TEMPLATE"  # the prompt first, then run(), RECIPE last
    assert next(n for n in statements if isinstance(n, ast.AsyncFunctionDef)).name == "run"
    assert statements[-1].targets[0].id == "RECIPE" and embedded_recipe(src).labels is not None
    template = ast.literal_eval(statements[0].value)
    assert template.startswith("Which intent does this smart-home voice command express? "
                               "Answer with the intent name only.")
    assert "Classify the text" not in src
    # a math seed's wording is kept, with the answer format the generated code reads
    math = apply_pattern(shipped("gsm8k_naive.py"), "tool_use", {}, "math").source
    assert "Solve this math word problem. End with the final number. Write every calculation as" in math
    assert 'End with a line "#### <number>".' in math and "final_number(" in math
    # a seed without an instruction line (few-shot completion) keeps the generic one when chat asks for it
    chat = apply_pattern(shipped("home_intents_fewshot.py"), "chat_mode", {}, "classification").source
    assert "Classify the text into one of the labels." in chat


# --------------------------------------------------------------------------- behaviour with a stub model


class ParamStub(StubGateway):
    """Sees the params (seed, temperature, response_format) of each call."""

    def __init__(self, reply):
        super().__init__(lambda text: "")
        self.reply_fn = reply
        self.calls: list[dict] = []

    async def complete(self, model, prompt, params: ModelParams | None = None, **kw):
        self.calls.append({"prompt": prompt, "params": params, **kw})
        text = self.reply_fn(prompt, params, kw)
        self.usage.calls += 1
        return LLMResponse(model=model, text=text, prompt_tokens=1, completion_tokens=1)

    async def chat(self, model, messages, params=None, **kw):
        return await self.complete(model, messages[-1]["content"], params, **kw)


def test_self_consistency_returns_the_majority_of_seeded_samples(tmp_path):
    src = shipped("home_intents_naive.py")
    src = apply_pattern(src, "completion_mode", {}, "classification").source
    src = apply_pattern(src, "self_consistency", {"n": 5, "temperature": 0.9}, "classification").source
    # seeds 0 and 1 say set_alarm, 2-4 say the right label
    gw = ParamStub(lambda p, params, kw: " set_alarm" if params.seed < 2 else smart_reply(p))
    r = evaluate_source(src, "classification", tmp_path, gw)
    assert r.score == 1.0 and len(gw.calls) == 15
    assert {c["params"].seed for c in gw.calls} == {0, 1, 2, 3, 4} and all(c["params"].temperature == 0.9 for c in gw.calls)


def test_label_constraint_snaps_text_and_grammar_mode_sends_the_label_enum(tmp_path):
    base = apply_pattern(shipped("home_intents_naive.py"), "completion_mode", {}, "classification").source
    sloppy = {"lights please": "Lights On.", "music now": "play music please", "alarm at 7": "set_alar"}

    def reply(prompt, params, kw):
        return next(v for k, v in sloppy.items() if k in prompt)

    plain = evaluate_source(base, "classification", tmp_path / "a", ParamStub(reply))
    matched = evaluate_source(apply_pattern(base, "label_constraint", {}, "classification").source, "classification",
                              tmp_path / "b", ParamStub(reply))
    assert plain.score < 1.0 and matched.score == 1.0
    gw = ParamStub(lambda p, params, kw: json.dumps(smart_reply(p).strip()))
    grammar = apply_pattern(base, "label_constraint", {"mode": "grammar"}, "classification").source
    r = evaluate_source(grammar, "classification", tmp_path / "c", gw)
    assert r.score == 1.0
    assert gw.calls[0]["response_format"]["schema"] == {"type": "string", "enum": LABELS}  # from ctx.labels


def test_verify_retry_resamples_an_invalid_answer(tmp_path):
    src = apply_pattern(shipped("gsm8k_naive.py"), "verify_retry", {"max_retries": 2}, "math").source
    gw = ParamStub(lambda p, params, kw: "I do not know" if (params.seed or 0) < 1000 else smart_reply(p))
    r = evaluate_source(src, "math", tmp_path, gw)
    assert r.score == 1.0 and len(gw.calls) == 6  # one invalid + one retry per task
    assert {c["params"].temperature for c in gw.calls} == {None, 0.7} or {c["params"].temperature for c in gw.calls} == {0.0, 0.7}


def test_calculator_in_the_loop_fixes_arithmetic(tmp_path):
    src = apply_pattern(shipped("gsm8k_naive.py"), "completion_mode", {}, "math").source
    src = apply_pattern(src, "tool_use", {"tool": "calculator"}, "math").source
    assert "'>>'" in src

    def reply(prompt, params, kw):  # wrong arithmetic, cut at '>>' like a real stop sequence
        n = int(re.findall(r"What is (\d+) plus", prompt)[-1])
        if "<<" not in prompt.split("Answer:")[-1]:
            return f" {n}+{n}=<<{n}+{n}={2 * n + 1}"
        return f"{prompt.rsplit('=', 1)[-1].rstrip('>')}\n#### {prompt.rsplit('=', 1)[-1].rstrip('>')}"

    without = apply_pattern(shipped("gsm8k_naive.py"), "completion_mode", {}, "math").source
    r0 = evaluate_source(without, "math", tmp_path / "a", ParamStub(lambda p, params, kw: " 1+1=<<1+1=3>>3\n#### 3"))
    r1 = evaluate_source(src, "math", tmp_path / "b", ParamStub(reply))
    assert r0.score == 0.0 and r1.score == 1.0
    trace = RunStore.open(r1.run_dir).rollouts(r1.candidate_id)[0]
    assert [t.name for t in trace.tool_calls] == ["calculator"]


def test_python_tool_runs_the_models_program(tmp_path):
    src = apply_pattern(shipped("gsm8k_naive.py"), "completion_mode", {}, "math").source
    src = apply_pattern(src, "tool_use", {"tool": "python"}, "math").source

    def reply(prompt, params, kw):
        n = int(re.findall(r"What is (\d+) plus", prompt)[-1])
        return f"print({n} + {n})\n"

    r = evaluate_source(src, "math", tmp_path, ParamStub(reply))
    assert r.score == 1.0
    trace = RunStore.open(r.run_dir).rollouts(r.candidate_id)[0]
    assert trace.tool_calls[0].name == "python" and trace.tool_calls[0].result["exit_code"] == 0


def test_format_repair_cuts_prose_around_the_answer(tmp_path):
    naive = shipped("humaneval_naive.py")
    fixed = apply_pattern(naive, "format_repair", {}, "code").source
    reply = "Sure! Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds the numbers.\nprint(add(1, 2))"
    gw = lambda: ParamStub(lambda p, params, kw: reply.replace("```python\n", "").replace("```\n", ""))
    assert evaluate_source(fixed, "code", tmp_path / "b", gw()).score == 1.0
    assert evaluate_source(default_code(), "code", tmp_path / "a", gw()).score == 0.0


def default_code() -> str:
    return render_harness(default_recipe("code"))


# --------------------------------------------------------------------------- no benchmark data in pattern output


def _literals(source: str) -> set[str]:
    return {n.value.strip() for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _all_outputs(seed_source: str, shape: str) -> list[str]:
    rng = random.Random(7)
    outs = []
    for p in applicable(shape):
        outs.append(apply_pattern(seed_source, p.name, {}, shape).source)
        for _ in range(3):
            try:
                outs.append(apply_pattern(outs[-1], p.name, p.sample(rng, shape), shape).source)
            except PatternError:
                pass
    return outs


def _check_clean(bench: Benchmark, outputs: list[str]) -> None:
    tasks = [t for split in ("train", "search", "test") for t in bench.tasks(split)]
    ids = {t.id for t in tasks}
    targets = {t.target.strip() for t in tasks} | set(bench.labels or [])
    long_targets = {t for t in targets if len(t) >= 6 and not t.replace(".", "").isdigit()}
    for src in outputs:
        lits = _literals(src)
        assert not lits & targets, f"literal target in output: {sorted(lits & targets)[:3]}"
        hit_ids = [i for i in ids if i in src]
        assert not hit_ids, f"task id in output: {hit_ids[:3]}"
        hit = [t for t in long_targets if t in src]
        assert not hit, f"target text in output: {hit[:3]}"


def test_pattern_output_never_contains_task_ids_or_targets_home_intents():
    bench = load_benchmark("home_intents")
    outs = _all_outputs(shipped("home_intents_naive.py"), "classification")
    outs += _all_outputs(shipped("home_intents_fewshot.py"), "classification")
    _check_clean(bench, outs)


def test_pattern_output_never_contains_task_ids_or_targets_shared_data(shared_data):
    for name, harness, shape in (("banking77", "banking77_naive.py", "classification"),
                                 ("gsm8k", "gsm8k_naive.py", "math")):
        bench = load_benchmark(name, data=shared_data / name)
        _check_clean(bench, _all_outputs(shipped(harness), shape))


def test_pattern_output_never_contains_task_ids_or_targets_humaneval():
    bench = load_benchmark("humaneval")
    _check_clean(bench, _all_outputs(shipped("humaneval_naive.py"), "code"))


# --------------------------------------------------------------------------- meta-agent actions


def test_apply_pattern_action_names_are_an_enum():
    assert A.parse_action({"action": "apply_pattern", "name": "retrieval_fewshot", "hypothesis": "h"}).params == {}
    with pytest.raises(Exception):
        A.parse_action({"action": "apply_pattern", "name": "not_a_pattern", "hypothesis": "h"})


def arith_cls() -> Benchmark:
    words = ["lights", "music", "alarm"]
    def item(i, split):
        w = words[i % 3]
        return {"id": f"{split}-{i}", "input": f"{w} request {i}", "target": dict(zip(words, LABELS))[w]}
    return Benchmark.from_records("cls", train=[item(i, "train") for i in range(9)],
                                  search=[item(i, "search") for i in range(30)], test=[item(i, "test") for i in range(9)],
                                  scorer="label", task_shape="classification", labels=LABELS)


def fewshot_only_model(prompt: str) -> str:
    """Right only when the prompt shows examples (a 'Label: x' line), like a base model."""
    return smart_reply(prompt) if prompt.count("Label:") > 1 else " no idea"


def test_list_and_apply_pattern_actions_make_ordinary_candidates(tmp_path):
    seed = tmp_path / "seed.py"
    seed.write_text(shipped("home_intents_naive.py"))
    cfg = OptimizeConfig(harness=str(seed), benchmark="cls", budget=Budget(iterations=1, rollouts=200),
                         out=str(tmp_path / "runs"), meta_model="scripted")
    proposer = ScriptedProposer([[
        {"action": "list_patterns"},
        {"action": "apply_pattern", "name": "retrieval_fewshot", "params": {"k": 99}, "hypothesis": "h"},
        {"action": "apply_pattern", "name": "tool_use", "params": {}, "hypothesis": "h"},
        {"action": "apply_pattern", "name": "retrieval_fewshot", "params": {"k": 3}, "hypothesis": "shots help"},
        {"action": "full_eval", "candidate": "c0001"},
    ]])
    result = asyncio.run(optimize_async(cfg, proposer=proposer, gateway=StubGateway(fewshot_only_model),
                                        benchmark=arith_cls()))
    obs = proposer.observations
    assert "retrieval_fewshot" in obs[0] and "label_constraint" in obs[0] and "tool_use" not in obs[0].split("(not for")[0]
    assert "hand-written" in obs[0] and "[budget]" in obs[0]
    assert obs[1].startswith("error:") and "k" in obs[1] and "32" in obs[1]
    assert obs[2].startswith("error:") and "applies to math" in obs[2]
    assert "created candidate c0001" in obs[3]
    assert result.champion_id == "c0001" and result.champion_search == 1.0 and result.seed_search == 0.0
    meta = RunStore.open(result.run_dir).candidate_meta("c0001")
    assert meta.origin == "apply_pattern:retrieval_fewshot" and meta.parent == "c0000"
    assert meta.hypothesis.startswith("shots help [pattern retrieval_fewshot(k=3") and "wholesale" in meta.hypothesis
    assert "+K_SHOTS = 3" in meta.diff and meta.findings == []


def test_describe_patterns_shows_the_champions_recipe():
    src = apply_pattern(shipped("gsm8k_naive.py"), "tool_use", {}, "math").source
    text = describe_patterns("math", src)
    assert "The champion's recipe: tool_use(" in text and "(not for math: label_constraint)" in text
    for name, p in PATTERNS.items():
        assert p.summary and p.helps


# --------------------------------------------------------------------------- on the real embedded model


@pytest.mark.e2e
def test_pattern_stack_lifts_the_naive_harness_on_the_embedded_model(tmp_path):
    from harnessopt import evaluate

    naive = shipped("home_intents_naive.py")
    stacked = naive
    for name in ("completion_mode", "retrieval_fewshot", "label_constraint"):
        stacked = apply_pattern(stacked, name, {}, "classification").source
    before = evaluate(harness_from_source(naive, "naive.py"), "home_intents", split="test", limit=6, out=tmp_path)
    after = evaluate(harness_from_source(stacked, "stacked.py"), "home_intents", split="test", limit=6, out=tmp_path)
    assert after.n_errors == 0 and after.score >= 0.5 and after.score > before.score
    trace = RunStore.open(after.run_dir).rollouts(after.candidate_id)[0]
    assert trace.model_calls[0].kind == "complete" and trace.model_calls[0].prompt.count("Label:") == 9
