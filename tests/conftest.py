import itertools
import os

import pytest
from hypothesis import HealthCheck, settings

_numbers = itertools.count(1)

# Tests never depend on timing (the suite runs in parallel, `make test`: pytest-xdist, on
# machines that other suites share): no per-example deadline and no "too slow" health check,
# whose clocks would fail an example that was only waiting for a CPU. A test's own @settings
# still set its example counts. Hypothesis's example database (.hypothesis/) is safe to share
# between the workers: it writes each entry to a temporary file and renames it into place.
settings.register_profile("pigeon", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pigeon")


@pytest.fixture
def phone():
    """A fresh valid phone number per call (German mobile range), unique in this run."""

    def make() -> str:
        return f"+49151{os.getpid() % 1000:03d}{next(_numbers):05d}"

    return make
