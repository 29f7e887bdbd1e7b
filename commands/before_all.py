"""
command: "@"
description: Runs before every command; a return stops the pipeline
"""
if user is not None and User.getProperty("banned", False):
    return "banned"
