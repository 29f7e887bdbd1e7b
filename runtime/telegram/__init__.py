"""Telegram: update parsing, the packaged Bot API spec and call checks, the client, flood pacing."""
