"""
command: "*"
description: Anything no other command matched
"""
if message:
    Bot.sendMessage(f"You said: {message}\nSend /help to see what I can do.")
