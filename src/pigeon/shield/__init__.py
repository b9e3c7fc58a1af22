"""The shield: admission, rate limits and load shedding between the transport and the work."""

from .ratelimit import KeyedLimiter, Rate, TokenBucket

__all__ = ["KeyedLimiter", "Rate", "TokenBucket"]
