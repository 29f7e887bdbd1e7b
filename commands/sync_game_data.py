"""
command: syncGameData
description: Run by the signed link from /start, in the context of the user it was made for
"""
level = options["level"] if options else 1
User.setProperty("level", level)
User.setProperty("synced_from", params.get("ref", "unknown"))
Bot.sendMessage(f"Game data synced: you are on level {level}.")
