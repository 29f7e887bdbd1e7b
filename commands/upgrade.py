"""
command: /upgrade
description: Sends an upgrade link made for a given user, with a redirect after the click
"""
url = Webhook.getUrlFor(user_id=user["id"], command="upgradePlan", options={"plan": "pro"},
                        params={"ref": "upgrade"}, redirect="https://example.com/thanks")
Bot.sendMessage(f"Upgrade to pro: {url}")
