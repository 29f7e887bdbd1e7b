"""
command: /cron
description: Sends a global link (no user) for an external service to call
"""
Bot.sendMessage("Service link: " + Webhook.getGlobalUrl("cronTick"))
