"""The web server: the app factory, the Telegram endpoint, link clicks and ``res``, error pages.

Import :func:`runtime.web.app.create_app` from its module; this package loads nothing itself.
"""
