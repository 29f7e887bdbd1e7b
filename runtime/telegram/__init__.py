"""Telegram Bot API support for botbox: the packaged spec and call checking."""
