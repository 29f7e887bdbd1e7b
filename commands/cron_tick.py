"""
command: cronTick
description: For a global link (no user), e.g. called by a cron service
"""
ticks = Bot.getProperty("ticks", 0) + 1
Bot.setProperty("ticks", ticks)
res.json({"ticks": ticks, "user": user})
