"""HumanEval code generation, naive baseline: ask for the function body in one chat turn."""

PROMPT = """Complete this Python function. Reply with code only.

{{ task.input }}"""


async def run(task, ctx):
    reply = await ctx.chat([{"role": "user", "content": ctx.render(PROMPT, task=task)}], max_tokens=256)
    return strip_fences(reply)


def strip_fences(text):
    """Keep the code inside a ``` block if the model wrote one."""
    if "```" in text:
        inner = text.split("```")[1]
        return inner[len("python"):] if inner.startswith("python") else inner
    return text
