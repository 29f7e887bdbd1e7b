"""
command: /start
aliases: [start, hi]
description: Greets the user, counts visits, and sends a signed syncGameData link
answer: Hello, {{user.first_name}}!
keyboard: "/help,/count\n/feedback,/about"
"""
visits = User.getProperty("visits", 0) + 1
User.setProperty("visits", visits)
print("start for", user["id"], "visit", visits)
url = Webhook.getUrl("syncGameData", options={"level": 10}, params={"ref": "profile", "lang": "en"})
Bot.sendMessage(f"This is visit number {visits}. Sync your game data: {url}")
