"""Test support: a local Telegram Bot API stand-in and payload builders."""
