"""
command: /debug
description: Sends this update back with Bot.inspect
"""
Bot.inspect({"update_type": update_type, "user": user, "chat": chat, "params": params})
