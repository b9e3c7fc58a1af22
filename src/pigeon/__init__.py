"""Pigeon: a self-hostable messenger that keeps its users served under attack."""
__version__ = "0.1.0"
