"""
command: /menu
description: Runs /help through Bot.runCommand and reports what it returned
"""
shown = Bot.runCommand("/help")
print("help returned", shown)
