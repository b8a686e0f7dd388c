"""Smart-home command intent classifier, naive baseline: one zero-shot chat turn."""

PROMPT = """Which intent does this smart-home voice command express?

Command: {{ task.input }}

Answer with the intent name only."""


async def run(task, ctx):
    reply = await ctx.chat([{"role": "user", "content": ctx.render(PROMPT, task=task)}], max_tokens=16)
    return reply.strip()
