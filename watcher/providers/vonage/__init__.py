"""Vonage: the account API client and its loopback simulator."""
