"""
command: /help
aliases: [help, "?"]
description: Lists the commands
parse_mode: HTML
"""
lines = [
    "<b>botbox demo</b>",
    "/count - count your messages (properties)",
    "/set name NAME - remember your name; /set alone explains it",
    "/feedback - I ask, you answer (need_reply)",
    "/vote - buttons with callback data",
    "/remind - a run scheduled by Bot.run",
    "/menu - runs /help through Bot.runCommand",
    "/debug - Bot.inspect of this update",
    "/crash - a script error, handled by the ! command",
    "/about - an answer-only command",
]
Api.sendMessage(text="\n".join(lines), parse_mode="HTML")
return "shown"
