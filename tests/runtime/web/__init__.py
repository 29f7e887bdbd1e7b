"""Tests of runtime.web: the application state."""
