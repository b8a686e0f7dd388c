"""Workspace tasks, hand-written agent: JSON actions, clipped observations, error recovery.

* Each turn the model replies with one JSON action, {"thought", "action", "path", "input"}; the
  schema goes in `response_format`, so embedded models are grammar-constrained to it and remote
  models are asked for it (a reply that is not valid JSON is answered with the parse error).
* The workspace is listed, with the first lines of each file, before the first turn: the model
  starts from the file names and formats.
* Observations are clipped (head and tail kept); when the conversation grows past CONTEXT_CHARS,
  older ones shrink to their first lines, so it stays well inside a small model's context (only
  then: an unchanged prefix lets a local model reuse its evaluated prompt).
* Recovery: a repeated identical action is not run again (the model is told to try another);
  after errors pile up the model is told what went wrong; at the last step only `answer` is
  allowed, so the loop always ends with an answer of its own.
"""

import json

MAX_STEPS = 10
OBSERVATION_CHARS = 1800  # one observation shown to the model (head and tail kept)
CONTEXT_CHARS = 12_000  # past this, observations older than the last KEEP_RECENT shrink
OLD_OBSERVATION_LINES = 3
KEEP_RECENT = 3
MAX_ERRORS = 3  # consecutive failed steps before the model is pushed to answer
HEAD_FILES, HEAD_LINES, HEADS_CHARS = 15, 3, 2500  # file beginnings shown before the first step

ACTIONS = ["list", "read", "search", "write", "run_python", "run_shell", "answer"]

SYSTEM = """You solve a task about the files in a workspace folder, one action at a time.
Reply with one JSON object: {"thought": ..., "action": ..., "path": ..., "input": ...}

Actions:
- list: show the files under `path` ("." for all), with their sizes.
- read: show the text file at `path`.
- search: find the lines containing `input` (exact, case-sensitive) in the files under `path`.
- write: replace the whole file at `path` with `input`.
- run_python: run the Python code in `input` in the workspace; print what you need.
- run_shell: run the shell command in `input` in the workspace (e.g. python -m unittest).
- answer: finish; `input` is the final answer, the value alone (e.g. 42, E1234, clamp).

How to work:
1. Look at the files that matter: read small ones, search big ones.
2. For anything that needs counting, adding, comparing or scanning many lines, write a short
   Python program (run_python) that reads the files and prints the result; answer with what it
   printed. Do not compute such things in your head.
3. If there are tests, run them (run_shell: python -m unittest) and read what fails.
4. To change a file, read it first, then write its full new content.
5. Answer with the value alone. Use "" for fields you do not need."""

TASK = """Task: {{ task }}

Files in the workspace:
{{ listing }}

The first lines of each file:
{{ heads }}"""


def schema(actions):
    return {"type": "json_schema", "json_schema": {"name": "action", "schema": {
        "type": "object",
        "properties": {
            "thought": {"type": "string", "maxLength": 300},
            "action": {"type": "string", "enum": actions},
            "path": {"type": "string"},
            "input": {"type": "string"},
        },
        "required": ["thought", "action", "path", "input"],
    }}}


def clip(text, limit=OBSERVATION_CHARS):
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-limit // 3:]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters cut ...]\n{tail}"


def shrink(text):
    lines = text.splitlines()
    if len(lines) <= OLD_OBSERVATION_LINES:
        return text
    return "\n".join(lines[:OLD_OBSERVATION_LINES]) + f"\n[... {len(lines) - OLD_OBSERVATION_LINES} more lines, shown earlier]"


def tool_call(action):
    """(tool name, arguments) for a parsed action."""
    name, path, text = action["action"], action.get("path") or ".", action.get("input") or ""
    if name in ("list", "read"):
        return name, {"path": path}
    if name == "search":
        return name, {"pattern": text, "path": path}
    if name == "write":
        return name, {"path": action.get("path") or "", "content": text}
    if name == "run_python":
        return name, {"code": text}
    return name, {"command": text}


def parse(reply):
    """The action in a reply, or an error message for the model."""
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end < start:
        return None, "your reply held no JSON object; reply with one JSON action"
    try:
        action = json.loads(reply[start : end + 1])
    except json.JSONDecodeError as exc:
        return None, f"your reply was not valid JSON ({exc}); reply with one JSON action"
    if not isinstance(action, dict) or action.get("action") not in ACTIONS:
        return None, f"`action` must be one of {', '.join(ACTIONS)}"
    return action, None


async def file_heads(ctx, listing):
    """The first HEAD_LINES lines of the first HEAD_FILES files: their formats, before step one."""
    heads = []
    for line in str(listing).splitlines()[:HEAD_FILES]:
        path = line.split("  (")[0]
        head = await ctx.workspace.read(path, 1, HEAD_LINES)
        if head.ok:
            sliced = head.output.startswith(f"[{path}: lines ")  # a longer file: drop read's range header
            body = head.output.split("\n", 1)[1] if sliced else head.output
            heads.append(f"== {path} ==\n{body.rstrip()}")
    return clip("\n".join(heads), HEADS_CHARS)


async def run(task, ctx):
    listing = await ctx.workspace.list(".")
    heads = await file_heads(ctx, listing) if listing.ok else ""
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": ctx.render(TASK, task=task.input, listing=clip(str(listing)), heads=heads)},
    ]
    seen = {json.dumps(["list", {"path": "."}], sort_keys=True): 0}  # (tool, arguments) -> step it ran
    errors = 0
    for step in range(1, MAX_STEPS + 1):
        last = step == MAX_STEPS or errors >= MAX_ERRORS
        reply = await ctx.chat(messages, max_tokens=700, temperature=0.0,
                               response_format=schema(["answer"] if last else ACTIONS))
        action, problem = parse(reply)
        if action is not None and action["action"] == "answer":
            answer = (action.get("input") or "").strip()
            if answer:
                return answer.splitlines()[0].strip()
            problem = "the answer was empty; give the value in `input`"
        _compact(messages)
        messages.append({"role": "assistant", "content": reply})
        if problem is None:
            name, args = tool_call(action)
            key = json.dumps([name, args], sort_keys=True)
            if key in seen:
                problem = (f"you already ran this exact {name} at step {seen[key]}; its result is above. "
                           "Do something else, or answer.")
            else:
                seen[key] = step
                result = await ctx.workspace.call(name, args)
                problem = None if result.ok else result.error
                observation = str(result) if result.ok else f"ERROR: {result.error}"
        if problem is not None:
            errors += 1
            observation = f"ERROR: {problem}"
            if errors >= MAX_ERRORS:
                observation += "\nToo many errors in a row: answer now with what you know."
        else:
            errors = 0
        messages.append({"role": "user", "content": f"Result of step {step}:\n{clip(observation)}"})
    ctx.log(f"step cap reached ({MAX_STEPS} steps) without an answer")
    return ""


def _compact(messages):
    """Past CONTEXT_CHARS, shrink observations older than the last KEEP_RECENT (the task
    message stays whole)."""
    if sum(len(m["content"]) for m in messages) <= CONTEXT_CHARS:
        return
    results = [m for m in messages[2:] if m["role"] == "user"]
    for m in results[:-KEEP_RECENT]:
        m["content"] = shrink(m["content"])
