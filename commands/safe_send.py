"""
command: /tryapi
description: Catches an ApiError from Telegram
"""
try:
    Api.sendMessage(chat_id=-1, text="nobody is here")
except ApiError as e:
    Bot.sendMessage(f"Telegram said {e.code}: {e.description}")
