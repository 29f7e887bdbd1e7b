"""
command: /handle_my_chat_member
description: Notes when the bot is added to or removed from a chat
"""
status = request["new_chat_member"]["status"]
Bot.setProperty(f"member_status_{chat['id']}", status)
