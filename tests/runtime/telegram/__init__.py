"""Tests of the Telegram Bot API support."""
