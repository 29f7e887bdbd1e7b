"""
command: /api
description: Sends a link whose command answers with JSON (res.json)
"""
Bot.sendMessage("Your stats as JSON: " + Webhook.getUrl("stats"))
