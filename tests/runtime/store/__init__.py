"""Tests of the stores: one contract suite for every backend, and backend specifics."""
