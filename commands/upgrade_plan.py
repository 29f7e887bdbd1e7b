"""
command: upgradePlan
description: Run by the /upgrade link; the browser is then redirected to the signed redirect
"""
User.setProperty("plan", options["plan"])
Bot.sendMessage(f"You are now on the {options['plan']} plan (via {params['ref']}).")
