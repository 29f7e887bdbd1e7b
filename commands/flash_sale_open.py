"""
command: flashSaleOpen
description: The expiring link's command
"""
res.text("The flash sale is open. Hurry!")
