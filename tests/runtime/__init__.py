"""Tests of the bot runtime."""
