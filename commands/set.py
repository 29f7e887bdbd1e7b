"""
command: /set
description: Explains the /set commands
"""
Bot.sendMessage("Try /set name Ada")
