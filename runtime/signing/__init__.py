"""Signed links: the key ring (``keys.json``) and minting and verifying links with it."""
