"""A bot as its author wrote it: command files, the bot folder and ``bot.yaml``, dispatch, answers.

Pure: no I/O beyond reading a bot's folder, no web stack, no HTTP client.
"""
