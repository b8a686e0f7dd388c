"""Gateway unit tests: no network. A tiny OpenAI-compatible server on 127.0.0.1 plays the provider."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harnessopt.llm import LOCAL_MODEL, Gateway, LLMError, PermanentLLMError, TransientLLMError
from harnessopt.llm.gateway import _llm, retry_after_s
from harnessopt.records import ModelParams

_llm()  # import litellm (~4 s) at collection, not inside the first test

SECRET = "sk-test-SECRET0123456789abcdef"
MODEL = "openai/fake-model"  # unknown to litellm's price list: cost unknown
MESSAGES = [{"role": "user", "content": "Say hi"}]


# --------------------------------------------------------------------------- fake provider


def _ok_chat(text: str = "hi there", tool_calls: list | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
        message["content"] = None
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def _ok_text(text: str = " positive") -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "fake-model",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
    }


class FakeProvider:
    """Scripted responses: each request pops (status, headers, body); empty script = success."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with provider.lock:
                    provider.requests.append(
                        {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                    )
                    step = provider.script.pop(0) if provider.script else None
                if step is None:
                    step = (200, {}, _ok_text() if self.path.endswith("/completions")
                            and "chat" not in self.path else _ok_chat())
                status, headers, payload = step
                if headers.get("X-Test-Delay"):
                    time.sleep(float(headers["X-Test-Delay"]))
                data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"message": message, "type": "error", "code": status}}
        self.script.append((status, headers or {}, body))

    def ok(self, payload: dict[str, Any]) -> None:
        self.script.append((200, {}, payload))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider():
    p = FakeProvider()
    yield p
    p.close()


@pytest.fixture
def gw(provider):
    return Gateway(
        max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, timeout_s=5,
        api_base=provider.api_base, api_key=SECRET,
    )


# --------------------------------------------------------------------------- success paths


async def test_chat_success_accounting(gw, provider):
    resp = await gw.chat(MODEL, MESSAGES, ModelParams(temperature=0.2, max_tokens=5))
    assert resp.text == "hi there"
    assert (resp.prompt_tokens, resp.completion_tokens) == (7, 3)
    assert resp.attempts == 1 and resp.latency_s > 0
    assert resp.cost_usd == 0 and resp.cost_known is False  # litellm has no price for it
    assert provider.requests[0]["path"].endswith("/chat/completions")
    assert provider.requests[0]["auth"] == f"Bearer {SECRET}"
    assert gw.usage.calls == 1 and gw.usage.failed_calls == 0 and gw.usage.tokens == 10


async def test_params_and_extra_reach_the_provider(gw, provider):
    params = ModelParams(temperature=0.3, max_tokens=9, top_p=0.5, seed=42, stop=["\n"],
                         extra={"frequency_penalty": 0.5, "extra_body": {"min_p": 0.1}})
    await gw.chat(MODEL, MESSAGES, params, response_format={"type": "json_object"})
    body = provider.requests[0]["body"]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 9 and body["top_p"] == 0.5
    assert body["seed"] == 42 and body["stop"] == ["\n"]
    assert body["frequency_penalty"] == 0.5 and body["min_p"] == 0.1
    assert body["response_format"] == {"type": "json_object"}


async def test_complete_uses_text_completion_endpoint(gw, provider):
    resp = await gw.complete(MODEL, "Review: great\nSentiment:", ModelParams(max_tokens=3))
    assert resp.text == " positive"
    path = provider.requests[0]["path"]
    assert path.endswith("/completions") and "chat" not in path
    assert provider.requests[0]["body"]["prompt"] in ("Review: great\nSentiment:",
                                                       ["Review: great\nSentiment:"])
    assert (resp.prompt_tokens, resp.completion_tokens) == (11, 2)


async def test_tool_calls_are_decoded(gw, provider):
    provider.ok(_ok_chat(tool_calls=[{
        "id": "call_1", "type": "function",
        "function": {"name": "read_trace", "arguments": '{"task_id": "t7", "page": 2}'},
    }]))
    tools = [{"type": "function", "function": {
        "name": "read_trace", "parameters": {"type": "object", "properties": {}}}}]
    resp = await gw.chat(MODEL, MESSAGES, tools=tools)
    assert resp.tool_calls == [{"name": "read_trace", "arguments": {"task_id": "t7", "page": 2},
                                "id": "call_1"}]
    assert provider.requests[0]["body"]["tools"][0]["function"]["name"] == "read_trace"


async def test_mock_response_known_price():
    gw = Gateway(max_attempts=1)
    resp = await gw.chat("openai/gpt-4o-mini", MESSAGES, ModelParams(extra={"mock_response": "ok"}))
    assert resp.text == "ok"
    assert resp.cost_known is True and resp.cost_usd > 0
    assert gw.usage.cost_usd == pytest.approx(resp.cost_usd)


# --------------------------------------------------------------------------- retries


async def test_500_then_success_is_retried(gw, provider):
    provider.error(500, "boom")
    provider.error(502, "bad gateway")
    resp = await gw.chat(MODEL, MESSAGES)
    assert resp.text == "hi there"
    assert resp.attempts == 3 and len(provider.requests) == 3
    assert gw.usage.calls == 1 and gw.usage.failed_calls == 0


async def test_retry_after_seconds_is_honoured(provider):
    gw = Gateway(max_attempts=3, base_delay_s=0.001, max_delay_s=2.0,
                 api_base=provider.api_base, api_key=SECRET)
    provider.error(429, "slow down", {"Retry-After": "0.4"})
    t0 = time.perf_counter()
    resp = await gw.chat(MODEL, MESSAGES)
    elapsed = time.perf_counter() - t0
    assert resp.attempts == 2
    assert elapsed >= 0.4 and resp.latency_s >= 0.4  # without the header the wait is ~1 ms
    assert elapsed < 1.5


async def test_retry_after_is_capped_by_max_delay(provider):
    gw = Gateway(max_attempts=2, base_delay_s=0.001, max_delay_s=0.05,
                 api_base=provider.api_base, api_key=SECRET)
    provider.error(429, "slow down", {"Retry-After": "30"})
    t0 = time.perf_counter()
    resp = await gw.chat(MODEL, MESSAGES)
    assert resp.attempts == 2 and time.perf_counter() - t0 < 1.0


def test_retry_after_parsing_forms():
    class Exc(Exception):
        def __init__(self, headers: dict[str, str]) -> None:
            self.litellm_response_headers = headers

    assert retry_after_s(Exc({"retry-after": "3"})) == 3.0
    assert retry_after_s(Exc({"retry-after-ms": "250"})) == 0.25
    future = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= retry_after_s(Exc({"retry-after": future})) <= 5.0
    assert retry_after_s(Exc({})) is None
    assert retry_after_s(Exception("no headers")) is None


async def test_transient_errors_exhaust_attempts(gw, provider):
    for _ in range(4):
        provider.error(503, "overloaded")
    with pytest.raises(TransientLLMError) as info:
        await gw.chat(MODEL, MESSAGES)
    err = info.value
    assert err.attempts == 4 and len(provider.requests) == 4
    assert MODEL in str(err) and "4 attempt" in str(err)
    assert gw.usage.calls == 1 and gw.usage.failed_calls == 1 and gw.usage.tokens == 0


async def test_timeout_is_retried(provider):
    gw = Gateway(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05, timeout_s=0.3,
                 api_base=provider.api_base, api_key=SECRET)
    provider.script.append((200, {"X-Test-Delay": "1.0"}, _ok_chat("too late")))
    resp = await gw.chat(MODEL, MESSAGES)
    assert resp.attempts == 2 and resp.text == "hi there"
    assert resp.latency_s < 1.0


async def test_empty_choices_are_retried(gw, provider):
    bad = _ok_chat()
    bad["choices"] = []
    provider.ok(bad)
    resp = await gw.chat(MODEL, MESSAGES)
    assert resp.attempts == 2 and resp.text == "hi there"


# --------------------------------------------------------------------------- permanent errors


async def test_401_fails_at_once_without_leaking_the_key(gw, provider):
    provider.error(401, f"Incorrect API key provided: {SECRET}. Check your key.")
    with pytest.raises(PermanentLLMError) as info:
        await gw.chat(MODEL, MESSAGES)
    err = info.value
    text = str(err)
    assert len(provider.requests) == 1 and err.attempts == 1 and err.status_code == 401
    assert SECRET not in text and "SECRET0123" not in text and "sk-test" not in text
    assert SECRET not in repr(err) and SECRET not in repr(gw)
    assert err.__cause__ is None  # the provider exception (which quotes the key) is not chained
    assert text.startswith(MODEL) and "\n" not in text
    assert "OPENAI_API_KEY" in text  # says what to set
    assert gw.usage.failed_calls == 1


@pytest.mark.parametrize("status", [400, 404])
async def test_client_errors_are_permanent(gw, provider, status):
    provider.error(status, "no such thing")
    with pytest.raises(PermanentLLMError):
        await gw.chat(MODEL, MESSAGES)
    assert len(provider.requests) == 1


async def test_context_window_exceeded_is_permanent(gw, provider):
    provider.error(400, "This model's maximum context length is 8192 tokens. However, your "
                        "messages resulted in 9000 tokens.")
    with pytest.raises(PermanentLLMError) as info:
        await gw.chat(MODEL, MESSAGES)
    assert len(provider.requests) == 1
    assert "shorten" in str(info.value)


async def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    gw = Gateway(max_attempts=3, base_delay_s=0.01)
    with pytest.raises(PermanentLLMError) as info:
        await gw.chat("anthropic/claude-3-5-haiku-latest", MESSAGES)
    assert info.value.attempts == 1
    assert "ANTHROPIC_API_KEY" in str(info.value)


async def test_unknown_provider_is_permanent_with_hint():
    gw = Gateway(max_attempts=3, base_delay_s=0.01)
    with pytest.raises(PermanentLLMError) as info:
        await gw.chat("no-such-provider-model", MESSAGES)
    assert "provider prefix" in str(info.value)
    assert isinstance(info.value, LLMError)


async def test_local_model_rejects_native_tools():
    gw = Gateway()
    with pytest.raises(PermanentLLMError, match="response_format"):
        await gw.chat(LOCAL_MODEL, MESSAGES, tools=[{"type": "function", "function": {"name": "x"}}])
    assert gw.usage.failed_calls == 1


# --------------------------------------------------------------------------- concurrency, misc


async def test_usage_totals_under_concurrency(gw, provider):
    for _ in range(5):
        provider.error(500, "flaky")
    results = await asyncio.gather(*(gw.chat(MODEL, MESSAGES) for _ in range(20)))
    assert len(results) == 20
    assert sum(r.attempts for r in results) == 25 == len(provider.requests)
    assert gw.usage.calls == 20 and gw.usage.failed_calls == 0
    assert gw.usage.prompt_tokens == 20 * 7 and gw.usage.completion_tokens == 20 * 3


async def test_usage_counts_failures_and_successes(gw, provider):
    await gw.chat(MODEL, MESSAGES)
    provider.error(401, "bad key")
    with pytest.raises(PermanentLLMError):
        await gw.chat(MODEL, MESSAGES)
    await gw.complete(MODEL, "x")
    assert gw.usage.calls == 3 and gw.usage.failed_calls == 1
    assert gw.usage.tokens == 10 + 13


def test_supports_tools():
    gw = Gateway()
    assert gw.supports_tools("openai/gpt-4o-mini") is True
    assert gw.supports_tools(LOCAL_MODEL) is False
    assert gw.supports_tools("no-such-provider/whatever") is False


async def test_grammar_response_format_is_refused_for_remote_models(gw, provider):
    with pytest.raises(PermanentLLMError, match="embedded local/... models only"):
        await gw.chat(MODEL, MESSAGES, response_format={"type": "grammar", "grammar": 'root ::= "a"'})
    assert provider.requests == [] and gw.usage.failed_calls == 1


# --------------------------------------------------------------------------- preflight of local servers


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_preflight_of_an_unreachable_ollama_fails_fast_in_one_line(monkeypatch):
    from harnessopt.llm import preflight

    port = _free_port()
    monkeypatch.setenv("OLLAMA_API_BASE", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    with pytest.raises(PermanentLLMError) as info:
        preflight("ollama/llama3")
    assert time.perf_counter() - t0 < 3
    assert str(info.value) == (f"ollama/llama3: no server answers at http://127.0.0.1:{port} (connection refused); "
                               "start it with `ollama serve`, or set OLLAMA_API_BASE to where it runs")
    assert info.value.kind == "Unreachable"


def test_preflight_of_a_silent_api_base_gives_up_after_two_seconds():
    import socket

    from harnessopt.llm import preflight_gateway

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        t0 = time.perf_counter()
        expected = r"no server answers at .*/v1 \(no answer within 2 s\); start the server, or fix api_base"
        with pytest.raises(PermanentLLMError, match=expected):
            preflight_gateway(Gateway(api_base=url), "openai/my-model")
        assert time.perf_counter() - t0 < 5


def test_preflight_passes_when_the_server_answers(provider):
    from harnessopt.llm import preflight_gateway

    preflight_gateway(Gateway(api_base=provider.api_base), "openai/my-model")  # GET is 501 here: it answers
    assert provider.requests == []  # no model call was made


def test_cli_eval_against_a_dead_ollama_exits_2_in_seconds(monkeypatch, capsys, repo, tmp_path):
    from harnessopt.cli import main

    monkeypatch.setenv("OLLAMA_API_BASE", f"http://127.0.0.1:{_free_port()}")
    t0 = time.perf_counter()
    code = main(["eval", "--harness", str(repo / "harnesses/home_intents_naive.py"), "--benchmark", "home_intents",
                 "--task-model", "ollama/llama3", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and time.perf_counter() - t0 < 5
    assert err.count("\n") == 1 and "no server answers at http://127.0.0.1:" in err
    assert list(tmp_path.iterdir()) == []  # no run directory
