"""Tests of runtime.bots: command files, bot folders, dispatch, answers."""
