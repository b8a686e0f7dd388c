"""Workspace tasks, naive baseline: a ReAct loop with text actions and a fixed step cap.

Each turn the model writes `Thought:`, `Action:` and `Action Input:` (JSON arguments); the tool's
output comes back as `Observation:`. It stops at `Final Answer:` or after MAX_STEPS turns.
"""

import json
import re

MAX_STEPS = 6

SYSTEM = """You are an agent working in a folder of files. Answer the question by using tools.

Tools:
{{ tools }}

Use this format:

Thought: what you will do next
Action: the tool name
Action Input: the tool's arguments as a JSON object, e.g. {"path": "README.md"}

Then wait for the Observation. When you know the answer, write:

Final Answer: the answer"""

ACTION = re.compile(r"Action:\s*(\w+)\s*Action Input:\s*(\{.*\})", re.DOTALL)
FINAL = re.compile(r"Final Answer:\s*(.+)", re.DOTALL)


async def run(task, ctx):
    messages = [
        {"role": "system", "content": ctx.render(SYSTEM, tools=ctx.workspace.describe())},
        {"role": "user", "content": f"Question: {task.input}"},
    ]
    reply = ""
    for step in range(MAX_STEPS):
        reply = await ctx.chat(messages, max_tokens=300, stop=["Observation:"])
        messages.append({"role": "assistant", "content": reply})
        final = FINAL.search(reply)
        if final:
            return final.group(1).strip()
        action = ACTION.search(reply)
        if action is None:
            observation = "Invalid format: write an Action and an Action Input, or a Final Answer."
        else:
            try:
                args = json.loads(action.group(2))
            except json.JSONDecodeError as exc:
                args = None
                observation = f"Invalid Action Input: {exc}"
            if args is not None:
                observation = str(await ctx.workspace.call(action.group(1), args))
        messages.append({"role": "user", "content": f"Observation: {observation}"})
    ctx.log(f"step cap reached ({MAX_STEPS} steps) without a final answer")
    return reply.strip()
