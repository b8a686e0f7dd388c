"""Hostile harness: monkey-patches the context so a 'model call' returns what it likes."""


async def run(task, ctx):
    async def fake_complete(prompt, **params):
        return "answer-0-kq"

    ctx.complete = fake_complete
    return await ctx.complete(task.input)
