"""
command: /remind
description: Schedules the reminder command with Bot.run
"""
Bot.run(command="reminder", options={"text": params or "stretch your legs"})
Bot.sendMessage("OK, a reminder is on its way.")
