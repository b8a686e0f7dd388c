"""End-to-end tests on the embedded models (Gemma 3 270M base, Qwen2.5-Coder 0.5B instruct, llama.cpp),
through the gateway."""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest

from harnessopt.llm import LOCAL_MODEL, LOCAL_MODELS, Gateway, PermanentLLMError, local
from harnessopt.llm.model_files import ensure_model_file, missing_parts
from harnessopt.records import ModelParams

pytest.importorskip("llama_cpp")
if missing_parts(LOCAL_MODELS[LOCAL_MODEL]):
    pytest.skip("the embedded model's part packages are not installed", allow_module_level=True)

QWEN = "local/qwen2.5-coder-0.5b"
pytestmark = pytest.mark.e2e

FEW_SHOT = """Review: I loved every minute of this film.
Sentiment: positive
Review: Terrible acting and a boring plot.
Sentiment: negative
Review: A waste of money, I walked out.
Sentiment: negative
Review: Wonderful, moving and beautifully shot.
Sentiment:"""

ACTION_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["overview", "read_trace", "finish"]},
        "note": {"type": "string", "maxLength": 12},
    },
    "required": ["action", "note"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model() -> local.LocalModel:
    return local.get_local_model()  # loads once for the whole module


@pytest.fixture
def gw(model) -> Gateway:
    return Gateway()


def test_model_loads_once(model):
    assert local.get_local_model() is model
    assert local.get_local_model(LOCAL_MODEL) is model
    assert model.load_s < 10


async def test_few_shot_completion(gw):
    resp = await gw.complete(LOCAL_MODEL, FEW_SHOT, ModelParams(temperature=0, max_tokens=4,
                                                                 stop=["\n"]))
    assert resp.text.strip() == "positive"
    assert resp.prompt_tokens > 30 and 0 < resp.completion_tokens <= 4
    assert resp.cost_usd == 0 and resp.cost_known is True and resp.attempts == 1
    assert gw.usage.calls == 1 and gw.usage.tokens == resp.prompt_tokens + resp.completion_tokens


async def test_chat_returns_text(gw):
    messages = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What colour is the sky on a clear day?"},
    ]
    resp = await gw.chat(LOCAL_MODEL, messages, ModelParams(temperature=0, max_tokens=12))
    assert isinstance(resp.text, str)
    assert "<start_of_turn>" not in resp.text and "<end_of_turn>" not in resp.text
    assert resp.prompt_tokens > 10 and resp.completion_tokens <= 12


def test_gemma_chat_format():
    prompt = local.format_gemma_chat([
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": [{"type": "text", "text": "U2"}]},
    ])
    assert prompt == (
        "<start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
        "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n"
    )


async def test_stop_sequences_and_max_tokens(gw):
    counting = "1, 2, 3, 4, 5, 6,"
    stopped = await gw.complete(LOCAL_MODEL, counting,
                                ModelParams(temperature=0, max_tokens=30, stop=[" 9"]))
    assert " 9" not in stopped.text and stopped.finish_reason == "stop"
    assert "7" in stopped.text  # it did generate up to the stop sequence
    capped = await gw.complete(LOCAL_MODEL, counting, ModelParams(temperature=0, max_tokens=3))
    assert capped.completion_tokens <= 3 and capped.finish_reason == "length"


async def test_same_seed_same_text(gw):
    params = ModelParams(temperature=1.0, max_tokens=16, seed=123)
    prompt = "Once upon a time, in a small village,"
    first = await gw.complete(LOCAL_MODEL, prompt, params)
    second = await gw.complete(LOCAL_MODEL, prompt, params)
    assert first.text == second.text and first.text
    others = [
        (await gw.complete(LOCAL_MODEL, prompt, params.model_copy(update={"seed": s}))).text
        for s in (7, 8)
    ]
    assert any(text != first.text for text in others)  # the seed does change the sample


async def test_json_schema_constrained_output(gw, model):
    import jsonschema

    messages = [{"role": "user", "content": "Choose the next action as JSON."}]
    fmt = {"type": "json_object", "schema": ACTION_SCHEMA}
    resp = await gw.chat(LOCAL_MODEL, messages, ModelParams(temperature=0.7, seed=1,
                                                            max_tokens=40), response_format=fmt)
    jsonschema.validate(json.loads(resp.text), ACTION_SCHEMA)
    # OpenAI-style json_schema form on plain completion; the compiled grammar is cached
    fmt2 = {"type": "json_schema", "json_schema": {"name": "action", "schema": ACTION_SCHEMA}}
    resp2 = await gw.complete(LOCAL_MODEL, "Next action:", ModelParams(temperature=0.7, seed=2,
                                                                       max_tokens=40),
                              response_format=fmt2)
    jsonschema.validate(json.loads(resp2.text), ACTION_SCHEMA)
    assert model.grammar_for(ACTION_SCHEMA) is model.grammar_for(dict(ACTION_SCHEMA))


async def test_concurrent_calls_do_not_block_the_loop(gw):
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    prompts = [f"{FEW_SHOT[:-len('Sentiment:')]}Review: test number {i}.\nSentiment:"
               for i in range(8)]
    results = await asyncio.gather(*(
        gw.complete(LOCAL_MODEL, p, ModelParams(temperature=0, max_tokens=6, stop=["\n"]))
        for p in prompts
    ))
    elapsed = time.perf_counter() - t0
    done.set()
    await tick_task
    assert len(results) == 8 and all(isinstance(r.text, str) for r in results)
    assert gw.usage.calls == 8 and gw.usage.failed_calls == 0
    assert ticks >= elapsed / 0.01 * 0.3  # the loop kept running while llama.cpp worked


async def test_prompt_longer_than_context_is_permanent(gw):
    with pytest.raises(PermanentLLMError, match="context"):
        await gw.complete(LOCAL_MODEL, "word " * (local.get_local_model().n_ctx + 100), ModelParams(max_tokens=4))
    assert gw.usage.failed_calls == 1


async def test_unknown_local_model_is_permanent(gw):
    with pytest.raises(PermanentLLMError, match=LOCAL_MODEL):
        await gw.complete("local/no-such-model", "hi")


# --------------------------------------------------------------------------- Qwen (instruct) beside Gemma


@pytest.fixture(scope="module")
def qwen() -> local.LocalModel:
    if missing_parts(LOCAL_MODELS[QWEN]):
        pytest.skip(f"{QWEN} is not installed (pip install 'harnessopt[local-small]')")
    return local.get_local_model(QWEN)


def test_qwen_chat_uses_the_gguf_template_and_keeps_the_system_role(qwen):
    messages = [{"role": "system", "content": "You are a pirate. Always start your reply with 'Arr'."},
                {"role": "user", "content": "What is the capital of France?"}]
    prompt, stops = qwen.render_chat(messages)
    assert prompt == ("<|im_start|>system\nYou are a pirate. Always start your reply with 'Arr'.<|im_end|>\n"
                      "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert stops == ["<|im_end|>"]
    result = qwen.chat(messages, ModelParams(temperature=0, max_tokens=12))
    # <|im_start|> parsed as one special token each, not as text: the prompt is short.
    assert result.prompt_tokens == len(qwen.llama.tokenize(prompt.encode(), add_bos=False, special=True)) < 40
    assert result.text.startswith("Arr") and "<|im_end|>" not in result.text  # the system role reached the model
    # Without a system message the template supplies its own default one.
    assert "You are Qwen" in qwen.render_chat(messages[1:])[0]


async def test_two_local_models_in_one_process(model, qwen, gw):
    assert local.get_local_model(QWEN) is qwen and qwen is not model
    assert {LOCAL_MODEL, QWEN} <= set(local.loaded_models())
    few, chat, few_again = await asyncio.gather(
        gw.complete(LOCAL_MODEL, FEW_SHOT, ModelParams(temperature=0, max_tokens=4, stop=["\n"])),
        gw.chat(QWEN, [{"role": "user", "content": "Say OK."}], ModelParams(temperature=0, max_tokens=4)),
        gw.complete(LOCAL_MODEL, FEW_SHOT, ModelParams(temperature=0, max_tokens=4, stop=["\n"])),
    )
    assert few.text.strip() == few_again.text.strip() == "positive"  # Gemma unaffected by Qwen beside it
    assert chat.text and chat.model == QWEN and gw.usage.calls == 3 and gw.usage.failed_calls == 0


@pytest.mark.parametrize("name", [LOCAL_MODEL, QWEN])
async def test_schema_and_gbnf_constraints_on_every_local_model(name, gw, request):
    import jsonschema

    request.getfixturevalue("qwen" if name == QWEN else "model")
    resp = await gw.chat(name, [{"role": "user", "content": "Choose the next action as JSON."}],
                         ModelParams(temperature=0.7, seed=1, max_tokens=40),
                         response_format={"type": "json_object", "schema": ACTION_SCHEMA})
    jsonschema.validate(json.loads(resp.text), ACTION_SCHEMA)
    gbnf = 'root ::= ("yes" | "no") " because " [a-z]+'
    resp = await gw.complete(name, "Is Paris in France? Answer:", ModelParams(temperature=0.7, seed=2, max_tokens=12),
                             response_format={"type": "grammar", "grammar": gbnf})
    assert resp.text.split(" because ")[0] in ("yes", "no")
    with pytest.raises(PermanentLLMError, match="cannot compile the GBNF grammar"):
        await gw.complete(name, "x", ModelParams(max_tokens=2),
                          response_format={"type": "grammar", "grammar": "root ::= ("})


@pytest.mark.parametrize("name", list(LOCAL_MODELS))
def test_installed_models_match_the_registry(name):
    """Every installed model's parts hash to what the registry records (a wrong entry fails here)."""
    spec = LOCAL_MODELS[name]
    if missing_parts(spec):
        pytest.skip(f"{name} is not installed ({spec.install_hint})")
    path = ensure_model_file(spec)
    assert path.stat().st_size == spec.size and path.with_name(path.name + ".verified").is_file()


def test_cli_eval_with_a_qwen_task_model(qwen, repo, tmp_path, capsys):
    from harnessopt.cli import main
    from harnessopt.store import RunStore

    code = main(["eval", "--harness", str(repo / "harnesses/home_intents_fewshot.py"), "--benchmark", "home_intents",
                 "--task-model", QWEN, "--limit", "3", "--out", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out)
    assert result["n_rollouts"] == 3 and result["n_errors"] == 0
    traces = RunStore.open(result["run_dir"]).rollouts(result["candidate_id"])
    assert len(traces) == 3 and all(t.model_calls and t.model_calls[0].model == QWEN for t in traces)
    assert all(t.model_calls[0].completion_tokens >= 1 for t in traces)


@pytest.mark.parametrize("name", [LOCAL_MODEL, QWEN])
def test_option_logprobs_agree_with_the_greedy_reply(name, request):
    """The logits read for a judge's first token are the ones greedy decoding samples from: the option
    the temperature-0 reply starts with is the most probable one, and reading them twice (with a
    generation between) gives the same numbers, so no state leaks between calls."""
    m = request.getfixturevalue("qwen" if name == QWEN else "model")
    messages = [{"role": "user", "content": "Which one is a fruit? A: a chair. B: an apple. Reply with one letter, A or B."}]
    first = m.option_logprobs(messages, ["A", "B", "C"])
    reply = m.chat(messages, ModelParams(temperature=0, max_tokens=1))
    again = m.option_logprobs(messages, ["A", "B", "C"])
    assert again == pytest.approx(first, abs=1e-3)
    assert all(lp <= 0 for lp in first) and sum(math.exp(lp) for lp in first) <= 1 + 1e-6
    said = reply.text.strip()  # one token
    if said in ("A", "B", "C"):  # Gemma, a base model, may start with something else
        assert max(range(3), key=lambda k: first[k]) == "ABC".index(said)
    else:
        assert max(first) < math.log(0.5)  # then none of the options is the likely first token
