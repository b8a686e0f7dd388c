async def run(task, ctx):
    return (await ctx.complete("double " + task.input)).strip()
