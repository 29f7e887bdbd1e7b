"""
command: /feedback
description: Asks a question; the user's next message answers it
answer: What do you think of botbox? Reply with one message.
need_reply: true
"""
if message is None:  # a photo or a sticker answered
    Bot.sendMessage("Please answer with text.")
else:
    feedback = Bot.getProperty("feedback", [])
    feedback.append({"user": user["id"], "text": message[:500]})
    Bot.setProperty("feedback", feedback[-50:])
    Bot.sendMessage("Thank you, noted.")
