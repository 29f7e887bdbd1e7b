"""
command: /set name
description: Remembers a name (the longest command name wins over /set)
"""
name = params.strip()
if not name:
    Bot.sendMessage("Usage: /set name YOUR NAME")
else:
    User.setProperty("name", name)
    Bot.sendMessage(f"I will call you {name}.")
