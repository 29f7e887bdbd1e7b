"""
command: reminder
description: Run by /remind through Bot.run; options carry the text
"""
Bot.sendMessage(f"Reminder: {options['text']}")
