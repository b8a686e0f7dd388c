"""The LLM proposer: a meta model drives the proposal protocol, one short header per reply.

Each iteration is one fresh conversation: the one-page program (system), the brief (digest,
memory table, notebook, champion code, menu), then replies and observations. The model must
propose: the only headers it can send before its proposals are made are proposals and a bounded
number of trace reads; `finish` exists only once something has been proposed. A proposal that
repeats existing code, or cannot run, is refused with a one-line reason and the model tries again
in the same iteration (at a higher temperature after a repeat, so samples do not collapse onto one
move). On the embedded models a grammar fixes the reply's shape; elsewhere the reply is parsed
leniently. Every call is metered against the meta budget and cached by its exact request, so a
resumed run replays instead of paying again.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import ValidationError

from harnessopt import events as E
from harnessopt.budget import BudgetExceeded
from harnessopt.llm import CallRequest, LLMError, describe_model, is_local_model, metered_call
from harnessopt.meta import actions as A
from harnessopt.meta.grammar import reply_grammar
from harnessopt.meta.menu import compose, describe_menu, rank_by_digest
from harnessopt.meta.protocol import IterationPlan, ProtocolSettings, run_iteration
from harnessopt.meta.reply import Reply, ReplyError, apply_edits, split_reply
from harnessopt.meta.workbench import ActionError, Candidate, Workbench
from harnessopt.patterns import PatternError
from harnessopt.records import ModelParams

PROMPTS_DIR = Path(__file__).parent / "prompts"
PROGRAM_TEMPLATES = ("program.j2", "brief.j2", "decide.j2")
HEADER_TOKENS = 160   # a header-only reply (propose by moves, screen, full_eval)
CODE_TOKENS = 1400    # room for a whole harness file after a write/edit header
DECIDE_MIN, DECIDE_MAX = 2, 8  # evaluation-choice replies per iteration (policy `meta`)
UNUSABLE_LIMIT = 4    # unusable replies in a row end the proposal phase
MAX_CODE_CHARS = 60_000  # a proposed file longer than this is refused


def prompt_environment(templates_dir: str | Path | None = None) -> Environment:
    """Jinja environment for meta prompts; a user directory overrides the packaged templates."""
    paths = [str(templates_dir)] if templates_dir else []
    return Environment(loader=FileSystemLoader(paths + [str(PROMPTS_DIR)]), undefined=StrictUndefined,
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def model_line(name: str) -> str:
    info = describe_model(name)
    if info.kind == "base":
        return f"{name}: a BASE model (not instruction-tuned, no chat template): it continues the text it is given"
    if info.kind == "chat":
        return f"{name}: an instruction-tuned chat model"
    return name


class LLMProposer:
    def __init__(self, gateway: Any, model: str, *, settings: ProtocolSettings | None = None,
                 temperature: float = 0.7, max_tokens: int | None = None, seed: int = 0,
                 max_prompt_chars: int | None = None, templates_dir: str | Path | None = None,
                 task_model: str | None = None, tools_description: str = "calculator, python"):
        self.gateway = gateway
        self.model = model
        self.name = model
        self.settings = settings or ProtocolSettings()
        self.temperature = temperature
        self.max_tokens = max_tokens  # None: per reply kind (header only, or header + code)
        self.seed = seed
        local = is_local_model(model)
        self.local = local
        self.max_prompt_chars = max_prompt_chars or (12000 if local else 60000)
        self.env = prompt_environment(templates_dir)
        self.task_model = task_model
        self.tools_description = tools_description
        self._messages: list[dict[str, Any]] = []    # what the model is shown
        self._transcript: list[dict[str, Any]] = []  # everything, for meta/<iter>.jsonl
        self._step = 0

    # ------------------------------------------------------------------ the iteration

    async def run_iteration(self, wb: Workbench) -> None:
        rng = random.Random(f"harnessopt-menu:{self.seed}:{wb.state.iteration}")
        await run_iteration(wb, self, self.settings, rng)

    def _start(self, wb: Workbench, plan: IterationPlan) -> None:
        s = self.settings
        system = self.env.get_template("program.j2").render(
            benchmark=wb.benchmark.name, task_shape=wb.benchmark.spec.task_shape, proposals=s.proposals,
            policy=s.eval_policy, inspect_steps=s.inspect_steps, tools=self.tools_description,
            full_cost=len(wb.search_tasks) * wb.trials, feedback=wb.view.mode,
        )
        champion = wb.candidates[wb.state.champion]
        digest = wb.digest_of(champion.id)
        linked = s.menu_order == "digest" and wb.view.mode != "scores"  # scores mode shows no clusters
        if linked:
            plan.menu = rank_by_digest(plan.menu, digest)
        brief = self.env.get_template("brief.j2").render(
            iteration=wb.state.iteration, iterations=wb.budget.budget.iterations, budget=wb.budget_line(),
            task_model=model_line(self.task_model or wb.evaluator.model), notebook="\n".join(wb.state.notebook),
            champion=champion.id, digest=wb.view.digest(digest),
            memory=memory_table(wb), champion_code=champion.source, menu=describe_menu(plan.menu, digest if linked else None),
            proposals=s.proposals, labels=len(wb.benchmark.labels or []), linked=linked,
        )
        self._messages = [{"role": "system", "content": system}, {"role": "user", "content": brief}]
        self._transcript = list(self._messages)
        self._step = 0

    async def propose(self, wb: Workbench, plan: IterationPlan) -> None:
        self._start(wb, plan)
        inspections, refused, repeated = 0, 0, False
        steps = max(1, wb.budget.budget.meta_steps_per_iteration - (DECIDE_MIN if self.settings.eval_policy == "meta" else 0))
        unusable = 0
        for _ in range(steps):
            if len(plan.runnable()) >= self.settings.proposals or wb.budget.exhausted():
                break
            if unusable >= UNUSABLE_LIMIT:
                wb.event(E.MetaStopped(reason=f"{UNUSABLE_LIMIT} unusable replies in a row: no more proposals this iteration"))
                break
            # After a repeat or two refusals in a row, menu picks only: the menu holds new, runnable
            # code only, so samples that keep collapsing onto one change move to untried moves.
            types = (A.Propose,) if refused >= 2 or repeated else (
                A.PROPOSE_TYPES + (A.INSPECT_TYPES if inspections < self.settings.inspect_steps else ()))
            hot = min(1.3, self.temperature + 0.3 * (refused + unusable))
            reply, action = await self._ask(wb, plan, types, CODE_TOKENS, temperature=hot)
            if action is None:  # unreadable: said so; counts toward the unusable limit, not a refusal
                unusable += 1
                continue
            unusable = 0
            if isinstance(action, A.PROPOSE_TYPES):
                observation, repeated = self._make(wb, plan, action, reply)
                failed = observation.startswith("refused") or "but it cannot run" in observation
                refused = refused + 1 if failed else 0
                if observation.startswith("refused"):
                    self._forget_last_reply()
                    observation = f"Your last reply ({_gist(action)}) was {observation}"
            else:
                inspections += 1
                observation = await wb.execute(action)
            self._observe(wb, action, observation)

    def _make(self, wb: Workbench, plan: IterationPlan, action: A._Action, reply: Reply) -> tuple[str, bool]:
        """Build the candidate a proposal header asks for; (observation, was it a repeat)."""
        shape = wb.benchmark.spec.task_shape
        try:
            parent = wb.candidate(action.parent)
            if isinstance(action, A.Propose):
                plan.check_moves(action.moves)
                steps, source = compose(parent.source, plan.menu, action.moves, shape)
                moves, origin = " + ".join(s.label() for s in steps), "propose"
            elif isinstance(action, A.Write):
                if reply.code is None:
                    raise ReplyError("a write header must be followed by the whole file in a ```python block")
                source, moves, origin = reply.code, "", "write"
            elif reply.edits:
                source, moves, origin = apply_edits(parent.source, reply.edits), "", "edit"
            elif reply.code is not None:  # an edit header over a whole file: take the file
                source, moves, origin = reply.code, "", "write"
            else:
                raise ReplyError("an edit header must be followed by SEARCH/REPLACE blocks in a fenced block")
            if len(source) > MAX_CODE_CHARS:
                raise ReplyError(f"the file is too long ({len(source):,} characters; at most {MAX_CODE_CHARS:,}): "
                                 "propose a shorter harness")
            c = wb.propose(source, parent=parent.id, hypothesis=action.hypothesis, origin=origin, moves=moves,
                           predicted=action.predicted)
        except ActionError as exc:
            plan.refusals.append(str(exc))
            repeated = "already candidate" in str(exc)
            return f"refused: {exc}. Pick moves from the menu (each menu line is new code)." if repeated \
                else f"refused: {exc}", repeated
        except (PatternError, ReplyError) as exc:
            plan.refusals.append(str(exc))
            return f"refused: {exc}" + (" Next: pick moves from the menu." if len(plan.refusals) >= 2 else ""), False
        plan.made.append(c)
        if isinstance(action, A.Propose):
            plan.used_moves |= set(action.moves)
        return self._made_text(wb, plan, c), False

    def _made_text(self, wb: Workbench, plan: IterationPlan, c: Candidate) -> str:
        left = self.settings.proposals - len(plan.runnable())
        if c.harness is None:
            return (f"created {c.id}, but it cannot run: {c.meta.findings[0]}\n"
                    f"Repair it: an edit header with \"parent\": \"{c.id}\" and SEARCH/REPLACE blocks, or a new proposal.")
        flags = f" Static-check findings: {'; '.join(c.meta.findings)}." if c.meta.findings else ""
        what = c.moves or c.meta.origin
        more = (f" Propose the next one ({left} more): a different change." if left > 0
                else " That was the last proposal of this iteration.")
        return f"created {c.id} ({what}, parent {c.meta.parent}).{flags}{more}"

    # ------------------------------------------------------------------ evaluation choices (policy `meta`)

    async def decide(self, wb: Workbench, plan: IterationPlan) -> bool:
        """Ask which proposals to screen and which to evaluate fully; False after two unusable replies."""
        ready = plan.runnable()
        self._say(self.env.get_template("decide.j2").render(
            proposals=[{"id": c.id, "what": c.moves or c.meta.origin, "predicted": c.predicted,
                        "hypothesis": c.meta.hypothesis} for c in ready],
            champion=wb.state.champion, champion_score=_full_score(wb, wb.state.champion),
            tasks=plan.screen_task_ids, screen_cost=len(ready) * len(plan.screen_task_ids),
            full_cost=len(wb.search_tasks) * wb.trials, left=wb.budget.rollouts_left(),
        ))
        failures, acted, last = 0, False, ""
        left = wb.budget.budget.meta_steps_per_iteration - self._step
        for _ in range(min(DECIDE_MAX, max(DECIDE_MIN, left))):
            if wb.budget.exhausted():
                break
            types = A.DECIDE_TYPES if acted else (A.Screen, A.FullEval)  # no finish before a first choice
            _, action = await self._ask(wb, plan, types, HEADER_TOKENS, temperature=self.temperature)
            if action is None:
                failures += 1
                if failures >= 2:
                    break
                continue
            if isinstance(action, A.Finish):
                wb.event(E.EvaluationChosen(choice="finish", policy="meta", rationale=action.note or action.rationale))
                if action.note:
                    wb.add_note(action.note)
                self._observe(wb, action, "iteration finished")
                return True
            off_plan = _off_plan(plan, wb, action)
            if off_plan:  # small models re-pick the champion; the choice is between this iteration's proposals
                failures += 1
                cached = isinstance(action, A.FullEval) and _fully_evaluated(wb, action.candidate)
                said = (await self._evaluate(wb, action))[0] + "\n" if cached else ""  # free, and says so
                self._observe(wb, action, f"{said}error: {off_plan}\n{wb.budget_line()}")
                if failures >= 2:
                    break
                continue
            champion, choice = wb.state.champion, action.model_dump_json(exclude={"rationale"})
            same, last = choice == last, choice
            observation, ok = await self._evaluate(wb, action)
            acted = acted or ok
            done = self._evaluation_done(plan, champion != wb.state.champion, same)
            self._observe(wb, action, observation + ("\n" + done if done else
                                                     "\nNext: full_eval a candidate, screen more, or finish."))
            if done:
                wb.event(E.EvaluationChosen(choice="finish", policy="meta", rationale=done))
                return True
        if not any(c.spots or c.full_eval is not None for c in plan.runnable()):
            wb.event(E.EvaluationChosen(choice="fallback", policy="meta",
                                        rationale="no proposal evaluated by the meta-agent's choices: the ladder decides"))
            return False
        return True

    @staticmethod
    def _evaluation_done(plan: IterationPlan, promoted: bool, repeated: bool) -> str:
        """Why the evaluation choices of this iteration are over, or "" to ask for another: a
        promotion, the same choice twice in a row, or no proposal left to evaluate fully (small
        models otherwise repeat a choice until the steps run out)."""
        if promoted:
            return "A new champion: this iteration's evaluation is done."
        if repeated:
            return "The same choice twice: this iteration's evaluation is done."
        if all(c.full_eval is not None for c in plan.runnable()):
            return "Every proposal is fully evaluated: this iteration's evaluation is done."
        return ""

    async def _evaluate(self, wb: Workbench, action: A._Action) -> tuple[str, bool]:
        """Carry out a screen or full_eval; (observation, whether anything was evaluated)."""
        try:
            if isinstance(action, A.Screen):
                wb.event(E.EvaluationChosen(candidates=action.candidates, choice="spot", policy="meta",
                                            rationale=action.rationale))
                results = await wb.screen(action.candidates, action.task_ids, action.trials, action.rationale)
                return screen_table(results), True
            wb.event(E.EvaluationChosen(candidates=[action.candidate], choice="full", policy="meta",
                                        rationale=action.rationale))
            wb.runnable(action.candidate)
            text = await wb.execute(action)
            return text, not text.startswith("error")
        except (ActionError, BudgetExceeded) as exc:
            return f"error: {exc}\n{wb.budget_line()}", False

    # ------------------------------------------------------------------ talking to the model

    async def _ask(self, wb: Workbench, plan: IterationPlan, types: tuple[type[A._Action], ...], max_tokens: int,
                   *, temperature: float, numbers: list[int] | None = None,
                   picks: int | None = None) -> tuple[Reply, A._Action | None]:
        """One reply; an unusable one gets an error observation and returns (reply, None). `numbers`:
        what a pick may name (default: the open menu moves); `picks`: how many a rank reply names."""
        params = ModelParams(temperature=temperature, max_tokens=self.max_tokens or max_tokens,
                             seed=self.seed * 1000 + wb.state.iteration * 100 + self._step)
        self._step += 1
        request = CallRequest(kind="chat", model=self.model, messages=self._fit(), params=params)
        if self.local:  # decisions name proposals still to evaluate; a repair may start from a broken one
            deciding = all(t in A.DECIDE_TYPES for t in types)
            ids = [c.id for c in _open(plan, wb)] if deciding else list(wb.candidates)
            request.response_format = {"type": "grammar", "grammar": reply_grammar(
                types, candidates=ids, task_ids=list(wb.search_ids), menu=numbers or plan.open_moves() or [0], picks=picks)}
        cache = wb.store.meta_cache()
        try:
            response = await metered_call(self.gateway, request, meter=wb.budget, side="meta", cache=cache)
        except LLMError as exc:
            wb.event(E.MetaFailed(error=str(exc)))
            raise BudgetExceeded(f"meta model failed: {exc}") from None
        raw = response.text.strip()
        for history in (self._messages, self._transcript):
            history.append({"role": "assistant", "content": raw})
        try:
            reply = split_reply(raw)
            header = _lenient_json(reply.header)
            allowed = [t.model_fields["action"].default for t in types]
            name = header.get("action") if isinstance(header, dict) else None
            if name not in allowed:
                what = f"{name!r} is not available now" if name in A.ACTION_NAMES \
                    else f"unknown action {name!r}" if name else "the header has no \"action\""
                raise ReplyError(f"{what}; reply with one of: {', '.join(allowed)}"
                                 + (" (finish comes after a proposal)" if name == "finish" else ""))
            action = A.parse_action(header)
        except (ReplyError, ValidationError, ValueError) as exc:
            error = _short_error(exc)
            wb.event(E.InvalidAction(step=self._step, error=error, raw=raw[:500]))
            self._say(f"error: {error}\n{wb.budget_line()}")
            self._save(wb)
            return Reply(header="{}"), None
        return reply, action

    def _observe(self, wb: Workbench, action: A._Action, observation: str) -> None:
        wb.event(E.ActionTaken(step=self._step, action=action.action, rationale=getattr(action, "rationale", ""),
                               args=action.model_dump(exclude={"action", "rationale", "code"}), observation=observation[:400]))
        self._say(observation if "[budget]" in observation else f"{observation}\n{wb.budget_line()}")
        self._save(wb)

    def _say(self, text: str) -> None:
        """A user turn; text following another user turn joins it (roles keep alternating)."""
        for history in (self._messages, self._transcript):
            if history and history[-1]["role"] == "user":
                history[-1] = {"role": "user", "content": history[-1]["content"] + "\n\n" + text}
            else:
                history.append({"role": "user", "content": text})

    def _forget_last_reply(self) -> None:
        """Take a refused reply out of what the model is shown (the transcript keeps it): a small
        model shown its own refused reply tends to send it again, word for word."""
        if self._messages and self._messages[-1]["role"] == "assistant":
            self._messages.pop()

    def _save(self, wb: Workbench) -> None:
        wb.store.write_transcript(wb.state.iteration, self._transcript)

    def _fit(self) -> list[dict[str, Any]]:
        """System + brief + as many recent exchanges as fit; every message clipped to a quarter."""
        system, brief, *history = self._messages
        budget = self.max_prompt_chars
        if len(system["content"]) + len(brief["content"]) > budget:
            brief = {**brief, "content": brief["content"][: max(500, budget - len(system["content"]))] + "\n[cut]"}
        room = budget - len(system["content"]) - len(brief["content"])
        each = max(200, budget // 4)
        kept: list[dict[str, Any]] = []
        for m in reversed(history):
            m = {**m, "content": _clip(m["content"], each)}
            if len(m["content"]) > room:
                break
            kept.insert(0, m)
            room -= len(m["content"])
        if kept and kept[0]["role"] == "assistant":  # a conversation resumes with a user turn
            kept = kept[1:]
        return [system, brief, *kept]


# --------------------------------------------------------------------------- views shared with templates


def _open(plan: IterationPlan, wb: Workbench) -> list[Candidate]:
    """Runnable candidates without a full evaluation: this iteration's proposals first, then older ones."""
    ours = [c for c in plan.runnable() if c.full_eval is None]
    return ours + [c for c in wb.candidates.values() if c.harness is not None and c.full_eval is None and c not in ours]


def _fully_evaluated(wb: Workbench, cid: str) -> bool:
    c = wb.candidates.get(cid)
    return c is not None and c.full_eval is not None


def _off_plan(plan: IterationPlan, wb: Workbench, action: A._Action) -> str:
    """Why a screen or full_eval names no candidate still to evaluate, e.g. the champion ("" if it does not)."""
    named = action.candidates if isinstance(action, A.Screen) else [action.candidate]
    allowed = [c.id for c in _open(plan, wb)]
    stray = [cid for cid in named if cid not in allowed]
    if not stray:
        return ""
    return (f"{', '.join(stray)} is not a proposal still to evaluate; "
            f"choose among {', '.join(allowed) or '(none left: finish)'}")


def memory_table(wb: Workbench, describe: Callable[[Candidate], str] | None = None) -> str:
    """Every candidate tried: what it was (`describe`, else its moves or hypothesis), what it scored,
    what still fails (per feedback mode)."""
    lines = []
    for c in wb.candidates.values():
        what = describe(c) if describe else (c.moves or c.meta.hypothesis[:80] or c.meta.origin)
        still = wb.view.digest_line(wb.digest_of(c.id)) if (c.spots or c.full_eval) else ""
        pred = f", predicted {c.predicted:+.2f}" if c.predicted is not None else ""
        lines.append(f"- {c.id} (parent {c.meta.parent or '-'}): {what}{pred} -> {wb.result_text(c)}"
                     + (f"; still: {still}" if still else ""))
    return "\n".join(lines)


def screen_table(results: list[tuple[Candidate, Any]]) -> str:
    if not results:
        return "nothing screened"
    spot = results[0][1]
    vs = f" (the champion scores {spot.champion_score:.2f} on them)" if spot.champion_score is not None else ""
    lines = [f"screened on {len(spot.task_ids)} task(s) x {spot.trials}{vs}; spot-checks inform, only full_eval promotes:"]
    lines += [f"  {c.id} [{c.moves or c.meta.origin}]: {s.score:.2f}" for c, s in results]
    return "\n".join(lines)


def _gist(action: A._Action) -> str:
    if isinstance(action, A.Propose):
        return f"propose moves {action.moves}" + (f" on {action.parent}" if action.parent else "")
    return f"{action.action}" + (f" on {action.parent}" if action.parent else "")


def _full_score(wb: Workbench, cid: str) -> str:
    c = wb.candidates[cid]
    return f"{c.full_eval.score:.3f}" if c.full_eval else "not fully evaluated"


def _lenient_json(header: str) -> dict:
    """Parse a header; a reply cut inside its last string (max_tokens) is closed and kept."""
    try:
        return json.loads(header)
    except json.JSONDecodeError:
        for tail in ('"}', '}', '"]}', ']}'):
            try:
                return json.loads(header + tail)
            except json.JSONDecodeError:
                continue
        raise ReplyError("the JSON header is not valid JSON; send one JSON object") from None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 40] + f"\n[... {len(text) - limit + 40} characters cut]"


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errs = exc.errors()[:3]
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errs)
    return str(exc).splitlines()[0][:300]
