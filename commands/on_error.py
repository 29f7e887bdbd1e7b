"""
command: "!"
description: Runs when a command failed; sees the error global
"""
where = f" (line {error['line']})" if error.get("line") else ""
if chat is not None:
    Bot.sendMessage(f"Sorry, {error['command']} failed: {error['type']}{where}.")
