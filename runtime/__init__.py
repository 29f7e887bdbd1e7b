"""The botbox runtime: what user bot scripts run against."""
