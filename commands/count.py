"""
command: /count
description: Counts the user's and everybody's uses (user and bot properties)
"""
mine = User.getProperty("count", 0) + 1
total = Bot.getProperty("total", 0) + 1
User.setProperty("count", mine)
Bot.setProperty("total", total)
Bot.sendMessage(f"You: {mine}. Everybody: {total}.")
