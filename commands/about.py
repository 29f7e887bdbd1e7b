"""
command: /about
description: An answer-only command (no code), with an HTML-escaped placeholder
parse_mode: HTML
answer: "<b>botbox</b> runs this bot. You are {{user.first_name}}."
"""
