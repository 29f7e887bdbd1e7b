"""
command: /sale
description: Sends a link that expires after five minutes
"""
url = Webhook.getUrl({"command": "flashSaleOpen", "expires_in": 300})
Bot.sendMessage(f"Flash sale, open within 5 minutes: {url}")
