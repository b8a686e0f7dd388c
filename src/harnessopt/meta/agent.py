"""The LLM meta-agent: each iteration a fresh conversation, one validated action per step.

Native tool calling where the gateway says the model supports it; otherwise one JSON object
constrained by the action schema (grammar-constrained decoding on the embedded model), so even
a tiny local model yields valid actions. Each iteration starts from the notebook and the
overview, not from the previous conversation. Every model response is cached in the run
directory by its exact request, so a resumed run replays instead of paying again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import ValidationError

from harnessopt import events as E
from harnessopt.budget import BudgetExceeded
from harnessopt.llm import CallRequest, LLMError, is_local_model, metered_call
from harnessopt.meta import actions as A
from harnessopt.meta.workbench import Workbench
from harnessopt.records import LLMResponse, ModelParams

PROMPTS_DIR = Path(__file__).parent / "prompts"
REPEAT_LIMIT = 3  # the same action this many times in a row ends the iteration


class Proposer(Protocol):
    """Anything that drives a Workbench for one iteration (an LLM, a script, random search)."""

    name: str

    async def run_iteration(self, wb: Workbench) -> None: ...


def prompt_environment(templates_dir: str | Path | None = None) -> Environment:
    """Jinja environment for meta prompts; a user directory overrides the packaged templates."""
    paths = [str(templates_dir)] if templates_dir else []
    return Environment(loader=FileSystemLoader(paths + [str(PROMPTS_DIR)]), undefined=StrictUndefined,
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def describe_actions() -> list[dict[str, str]]:
    out = []
    for t in A.ACTION_TYPES:
        fields = [n for n in t.model_fields if n not in ("action", "rationale")]
        out.append({"name": t.model_fields["action"].default, "doc": (t.__doc__ or "").strip(),
                    "fields": ", ".join(fields)})
    return out


class LLMProposer:
    def __init__(self, gateway: Any, model: str, *, use_tools: bool | None = None, temperature: float = 0.7,
                 max_tokens: int | None = None, seed: int = 0, max_prompt_chars: int | None = None,
                 templates_dir: str | Path | None = None, tools_description: str = "calculator, python"):
        self.gateway = gateway
        self.model = model
        self.name = model
        self.use_tools = gateway.supports_tools(model) if use_tools is None else use_tools
        self.temperature = temperature
        local = is_local_model(model)
        # Grammar-constrained decoding on the embedded model runs at ~9 tokens/s: keep replies short.
        self.max_tokens = max_tokens or (400 if local else 4000)
        self.seed = seed
        # The embedded model has a 4096-token window; cloud models get far more room.
        self.max_prompt_chars = max_prompt_chars or (7000 if local else 60000)
        self.env = prompt_environment(templates_dir)
        self.tools_description = tools_description

    # ------------------------------------------------------------------ one iteration

    async def run_iteration(self, wb: Workbench) -> None:
        it = wb.state.iteration
        system = self.env.get_template("system.j2").render(
            benchmark=wb.benchmark.name, task_shape=wb.benchmark.spec.task_shape, feedback=wb.view.mode,
            tools=self.tools_description, actions=describe_actions(), json_mode=not self.use_tools,
        )
        champion = wb.candidates[wb.state.champion]
        user = self.env.get_template("iteration.j2").render(
            iteration=it, iterations=wb.budget.budget.iterations, notebook="\n".join(wb.state.notebook),
            overview=await wb._do_overview(A.Overview()), champion=champion.id, champion_code=champion.source,
        ) + "\n" + wb.budget_line()
        history: list[dict[str, Any]] = []
        transcript: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        last: list[str] = []
        for step in range(wb.budget.budget.meta_steps_per_iteration):
            stop = wb.budget.exhausted()
            if stop:
                wb.event(E.MetaStopped(reason=stop))
                break
            messages = self._fit(system, user, history)
            try:
                raw, action = await self._ask(wb, messages, step)
            except BudgetExceeded as exc:
                wb.event(E.MetaStopped(reason=str(exc)))
                break
            except LLMError as exc:
                wb.event(E.MetaFailed(error=str(exc)))
                break
            if isinstance(action, str):  # invalid action: say why and go on
                observation = f"error: invalid action: {action}\n{wb.budget_line()}"
                wb.event(E.InvalidAction(step=step, error=action, raw=raw[:500]))
            else:
                observation = await wb.execute(action)
                wb.event(E.ActionTaken(step=step, action=action.action, rationale=action.rationale,
                                       args=action.model_dump(exclude={"action", "rationale", "code"}),
                                       observation=observation[:400]))
            history += [{"role": "assistant", "content": raw}, {"role": "user", "content": observation}]
            transcript += history[-2:]
            wb.store.write_transcript(it, transcript)
            if not isinstance(action, str):
                if isinstance(action, A.Finish):
                    break
                key = action.model_dump_json(exclude={"rationale"})
                last = (last + [key])[-REPEAT_LIMIT:]
                if len(last) == REPEAT_LIMIT and len(set(last)) == 1:
                    wb.event(E.MetaStopped(reason=f"the same action {REPEAT_LIMIT} times in a row"))
                    break

    # ------------------------------------------------------------------ asking the model

    def _fit(self, system: str, user: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """System + iteration brief + as many recent exchanges as fit the prompt budget.

        Every message is first clipped to a quarter of the budget, so one enormous reply or
        observation can never push the prompt past it.
        """
        if len(user) + len(system) > self.max_prompt_chars:
            user = user[: max(500, self.max_prompt_chars - len(system))] + "\n[cut]"
        room = self.max_prompt_chars - len(system) - len(user)
        each = max(200, self.max_prompt_chars // 4)
        clipped = [{**m, "content": _clip(m["content"], each)} for m in history]
        kept: list[dict[str, Any]] = []
        for i in range(len(clipped) - 2, -1, -2):
            pair = clipped[i:i + 2]
            size = sum(len(m["content"]) for m in pair)
            if size > room:
                break
            kept = pair + kept
            room -= size
        return [{"role": "system", "content": system}, {"role": "user", "content": user}, *kept]

    async def _ask(self, wb: Workbench, messages: list[dict[str, Any]], step: int) -> tuple[str, A._Action | str]:
        params = ModelParams(temperature=self.temperature, max_tokens=self.max_tokens,
                             seed=self.seed * 1000 + wb.state.iteration * 100 + step)
        request: dict[str, Any] = {"model": self.model, "messages": messages, "params": params.model_dump()}
        if self.use_tools:
            request["tools"] = A.tool_schemas()
        else:
            schema = A.action_json_schema(candidates=list(wb.candidates), task_ids=list(wb.search_ids))
            request["response_format"] = {"type": "json_object", "schema": schema}
        response = await self._cached_call(wb, request, params)
        if response.tool_calls:
            call = response.tool_calls[0]
            raw = json.dumps({"action": call.get("name"), **(call.get("arguments") or {})})
        else:
            raw = response.text.strip()
        try:
            return raw, A.parse_action(_first_json_object(raw))
        except (ValidationError, ValueError) as exc:
            return raw, _short_validation_error(exc)

    async def _cached_call(self, wb: Workbench, request: dict[str, Any], params: ModelParams) -> LLMResponse:
        call = CallRequest(kind="chat", model=self.model, messages=request["messages"], params=params,
                           tools=request.get("tools"), response_format=request.get("response_format"))
        return await metered_call(self.gateway, call, meter=wb.budget, side="meta",
                                  cache=wb.store.meta_cache())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 40] + f"\n[... {len(text) - limit + 40} characters cut]"


def _first_json_object(text: str) -> str:
    """The first {...} object in a reply (models sometimes wrap JSON in prose or fences)."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply; answer with one JSON action")
    depth, in_str, escape = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            escape = (ch == "\\") and not escape
            if ch == '"' and not escape:
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    raise ValueError("unterminated JSON object in the reply")


def _short_validation_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errs = exc.errors()[:3]
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errs)
    return str(exc)[:300]
