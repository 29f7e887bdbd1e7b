"""
command: /crash
description: Fails on purpose; the ! command tells the user
"""
def ratio(a, b):
    return a / b

print("about to divide")
ratio(1, 0)
