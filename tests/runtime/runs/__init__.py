"""Tests of runtime.runs: run capabilities and the queue processor."""
