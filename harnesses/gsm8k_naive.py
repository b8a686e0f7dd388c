"""GSM8K math word problems, naive baseline: one zero-shot chat turn, answer read as given."""

PROMPT = """Solve this math word problem. End with the final number.

{{ task.input }}"""


async def run(task, ctx):
    reply = await ctx.chat([{"role": "user", "content": ctx.render(PROMPT, task=task)}], max_tokens=256)
    return reply.strip()
