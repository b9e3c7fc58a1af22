"""The fake clock of the shield's tests: time moves only when the test says so. (A module,
not only the ``clock`` fixture, since hypothesis tests need a fresh clock per example.)"""


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
