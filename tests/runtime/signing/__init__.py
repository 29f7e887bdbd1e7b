"""Tests of runtime.signing: the key ring and signed links."""
