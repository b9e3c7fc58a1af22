import pytest
from clocks import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
