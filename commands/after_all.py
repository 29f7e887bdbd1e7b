"""
command: "@@"
description: Runs after every command, also after a failure
"""
Bot.setProperty("last_update_type", update_type)
