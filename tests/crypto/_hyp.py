"""Hypothesis settings for crypto property tests (no deadline: big-integer work is slow)."""

from hypothesis import HealthCheck, settings

CRYPTO = settings(
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
