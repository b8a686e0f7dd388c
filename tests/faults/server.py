"""A fault-injecting OpenAI-compatible server on loopback, for tests (no network).

Serves `/v1/chat/completions` and `/v1/completions`. Each request takes the next fault from a
plan (a list, or a function of the request number); with no plan left it answers normally.
It counts what it actually *served*: only complete, well-formed 200 responses, with the token
usage they reported, so a test can check that the client's spend equals the server's.

Faults:
    ok          a normal completion (usage: prompt tokens = words in the prompt, 1 completion token)
    429         rate limited, with `Retry-After: <retry_after>` seconds
    500, 502, 503, 400, 401, 404   an error status with an OpenAI-style JSON error body
    reset       the connection is reset (RST) before any response
    timeout     no response for `stall_s` seconds, then the connection is closed
    malformed   200 with a body that is not JSON
    empty       200 with `"choices": []`
    truncated   200 whose body stops halfway (Content-Length promises more), then closed
    length      200, a normal completion cut by max_tokens (finish_reason "length"): served
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

FAULTS = ("ok", "429", "500", "502", "503", "400", "401", "404", "reset", "timeout", "malformed", "empty",
          "truncated", "length")
TRANSIENT = ("429", "500", "502", "503", "reset", "timeout", "malformed", "empty", "truncated")
PERMANENT = ("400", "401", "404")


@dataclass
class Served:
    """What the server has done so far."""

    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    ok: int = 0  # complete 200 responses with choices (what a client may be billed for)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class FaultServer:
    def __init__(self, plan: list[str] | Callable[[int], str] | None = None, *, retry_after: float = 0.05,
                 stall_s: float = 2.0, reply: Callable[[str], str] = lambda prompt: "ok"):
        self.plan = plan
        self.retry_after = retry_after
        self.stall_s = stall_s
        self.reply = reply
        self.served = Served()
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fault = server._next(body)
                try:
                    server._answer(self, body, fault)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass  # the client gave up first (timeouts): nothing was served

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # concurrent clients must not be refused at connect

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # client disconnects are part of the test

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.api_base = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    # ------------------------------------------------------------------ plan

    def _next(self, body: dict[str, Any]) -> str:
        with self.lock:
            n = self.served.requests
            self.served.requests += 1
            self.bodies.append(body)
            if callable(self.plan):
                fault = self.plan(n)
            elif self.plan:
                fault = self.plan.pop(0)
            else:
                fault = "ok"
            self.served.faults[fault] = self.served.faults.get(fault, 0) + 1
            return fault

    # ------------------------------------------------------------------ responses

    def _payload(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], finish: str) -> tuple[dict, int, int]:
        chat = "chat" in handler.path
        prompt = (body.get("messages") or [{}])[-1].get("content", "") if chat else body.get("prompt", "")
        if isinstance(prompt, list):
            prompt = " ".join(map(str, prompt))
        text = self.reply(str(prompt))
        p_tok, c_tok = max(1, len(str(prompt).split())), max(1, len(text.split()))
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
            choice["logprobs"] = None
        payload = {"id": "x-1", "object": "chat.completion" if chat else "text_completion", "created": 1,
                   "model": body.get("model", "fake"), "choices": [choice],
                   "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok}}
        return payload, p_tok, c_tok

    def _count(self, n: int, p_tok: int, c_tok: int) -> None:
        with self.lock:
            self.served.ok += n
            self.served.prompt_tokens += p_tok
            self.served.completion_tokens += c_tok

    def _send(self, handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data) if length is None else length))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()

    def _answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], fault: str) -> None:
        if fault in ("ok", "length"):
            payload, p_tok, c_tok = self._payload(handler, body, "stop" if fault == "ok" else "length")
            # Counted before sending (a client may read the response before this thread goes on),
            # taken back if the client had already gone.
            self._count(+1, p_tok, c_tok)
            try:
                self._send(handler, 200, json.dumps(payload).encode())
            except OSError:
                self._count(-1, -p_tok, -c_tok)
                raise
        elif fault.isdigit():
            status = int(fault)
            err = {"error": {"message": f"injected {status}", "type": "server_error" if status >= 500 else "invalid_request_error",
                             "code": status}}
            headers = {"Retry-After": f"{self.retry_after:g}"} if status == 429 else {}
            self._send(handler, status, json.dumps(err).encode(), headers)
        elif fault == "reset":
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.close_connection = True
            handler.connection.close()
        elif fault == "timeout":
            time.sleep(self.stall_s)
            handler.close_connection = True
        elif fault == "malformed":
            self._send(handler, 200, b'{"id": "x-1", "choices": [{"index": 0, "message": {"content": "ha')
        elif fault == "empty":
            payload, _, _ = self._payload(handler, body, "stop")
            payload["choices"] = []
            self._send(handler, 200, json.dumps(payload).encode())
        elif fault == "truncated":
            payload, _, _ = self._payload(handler, body, "stop")
            data = json.dumps(payload).encode()
            self._send(handler, 200, data[: len(data) // 2], length=len(data))
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FaultServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
