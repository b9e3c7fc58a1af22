import itertools
import os

import pytest

_numbers = itertools.count(1)


@pytest.fixture
def phone():
    """A fresh valid phone number per call (German mobile range), unique in this run."""

    def make() -> str:
        return f"+49151{os.getpid() % 1000:03d}{next(_numbers):05d}"

    return make
