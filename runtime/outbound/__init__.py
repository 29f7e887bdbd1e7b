"""Outbound HTTP for scripts (``HTTP.get``...), SSRF-safe.

``address`` and ``policy`` are pure (URL reading, address classes, host patterns, a bot's
``http:`` rules); ``broker`` makes the requests with httpx. The package imports nothing here, so
``runtime.bots`` can read the rules without loading httpx.
"""
