"""Banking77 intent classifier, naive baseline: one zero-shot chat turn, no examples, no label list.

The starting point an optimizer should beat. A base model (like the embedded Gemma 3 270M) has
no chat training, so this mostly fails; that gap is the point.
"""

PROMPT = """What is the intent of this banking customer message?

Message: {{ task.input }}

Reply with the intent label only."""


async def run(task, ctx):
    reply = await ctx.chat([{"role": "user", "content": ctx.render(PROMPT, task=task)}], max_tokens=16)
    return reply.strip()
