"""
command: dashboard
description: "The quick-start link, a small page about the user (no Telegram needed)"
"""
visits = User.getProperty("dashboard_visits", 0) + 1
User.setProperty("dashboard_visits", visits)
who = user["id"] if user else "nobody"
res.html(
    "<!doctype html><meta charset=utf-8><title>botbox demo</title>"
    "<body style='font-family:system-ui;max-width:36em;margin:3em auto'>"
    f"<h1>Hello, user {who}</h1>"
    f"<p>This page was made by the <code>dashboard</code> command, run in a sandbox "
    f"for the user this signed link was made for. Visit number {visits}.</p>"
    f"<p>Came from: {params.get('from', 'somewhere')}</p></body>"
)
