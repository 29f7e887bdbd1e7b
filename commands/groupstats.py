"""
command: /groupstats
group_only: true
description: Only answers in groups
"""
Bot.sendMessage(f"This group is {chat.get('title', 'untitled')}.")
