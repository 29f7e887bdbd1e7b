"""
command: stats
description: Answers a click with JSON built from the user's properties
"""
res.set("Cache-Control", "no-store")
res.json({
    "user": user["id"],
    "visits": User.getProperty("visits", 0),
    "level": User.getProperty("level"),
    "plan": User.getProperty("plan", "free"),
    "method": request["method"],
})
