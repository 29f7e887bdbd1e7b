"""
command: /start
aliases: [start, hi]
description: Greets the user and shows the menu
answer: Hello, {{user.first_name}}!
keyboard: "/help,/count\n/feedback,/about"
"""
visits = User.getProperty("visits", 0) + 1
User.setProperty("visits", visits)
print("start for", user["id"], "visit", visits)
Bot.sendMessage(f"This is visit number {visits}. Try /help for everything I can do.")
