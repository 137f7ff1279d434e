"""Vonage: the API client, its wire models and error classifier, the sources and the simulator."""
