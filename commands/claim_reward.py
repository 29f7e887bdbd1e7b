"""
command: claimReward
description: Run at most once per link
"""
rewards = User.getProperty("rewards", 0) + 1
User.setProperty("rewards", rewards)
res.html(f"<h1>Reward claimed</h1><p>You now have {rewards} reward(s).</p>")
