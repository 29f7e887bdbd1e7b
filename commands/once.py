"""
command: /reward
description: Sends a one-time link (a second click is refused with 410)
"""
Bot.sendMessage("Claim your reward (works once): " + Webhook.getUrl("claimReward", once=True))
