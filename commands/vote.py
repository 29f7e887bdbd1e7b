"""
command: /vote
aliases: [vote]
description: Inline buttons; their callback data is matched like typed text
"""
if update_type == "callback_query":
    choice = params or "nothing"
    votes = Bot.getProperty("votes", {})
    votes[choice] = votes.get(choice, 0) + 1
    Bot.setProperty("votes", votes)
    Api.answerCallbackQuery(callback_query_id=request["id"], text=f"You voted {choice}")
else:
    Api.sendMessage(text="Do you like it?", reply_markup={"inline_keyboard": [[
        {"text": "Yes", "callback_data": "vote yes"},
        {"text": "No", "callback_data": "vote no"},
    ]]})
