"""Full garbage collections wait while the herd comes back (issue 13): a fake collector and a
fake clock; the hold follows the rate of returning devices, ends when they are in, and never
lasts longer than ``max_hold`` (then the collector gets its turn)."""

from pigeon.server.collections_hold import OUT_OF_REACH, CollectionHold


class Collector:
    def __init__(self) -> None:
        self.thresholds = (700, 10, 10)

    def get_threshold(self) -> tuple[int, int, int]:
        return self.thresholds

    def set_threshold(self, *values: int) -> None:
        self.thresholds = values  # type: ignore[assignment]


class Herd:
    def __init__(self) -> None:
        self.now = 0.0
        self.arrived = 0

    def clock(self) -> float:
        return self.now

    def second(self, arrivals: int, hold: CollectionHold) -> None:
        self.now += 1.0
        self.arrived += arrivals
        hold.tick()


def make(**kw: float) -> tuple[Herd, Collector, CollectionHold]:
    herd, collector = Herd(), Collector()
    hold = CollectionHold(lambda: herd.arrived, storm_rate=50.0, quiet=5.0,
                          clock=herd.clock, collector=collector, **kw)
    return herd, collector, hold


def test_full_collections_wait_while_devices_come_back_and_resume_after():
    herd, collector, hold = make()
    herd.second(10, hold)  # everyday arrivals: nothing held
    assert not hold.holding and collector.thresholds == (700, 10, 10)
    herd.second(400, hold)  # the herd
    assert hold.holding and collector.thresholds == (700, 10, OUT_OF_REACH)
    for _ in range(4):
        herd.second(0, hold)
    assert hold.holding  # quiet for 4 s: not yet
    herd.second(0, hold)
    assert not hold.holding and collector.thresholds == (700, 10, 10)
    assert hold.stats() == {"holding": False, "holds": 1}


def test_a_hold_ends_after_max_hold_and_the_collector_gets_its_turn():
    herd, collector, hold = make(max_hold=20.0)
    for _ in range(20):
        herd.second(300, hold)
    assert hold.holding
    herd.second(300, hold)
    assert not hold.holding and collector.thresholds == (700, 10, 10)
    for _ in range(9):  # the collector's turn: 2 * quiet seconds, storm or not
        herd.second(300, hold)
        assert not hold.holding
    herd.second(300, hold)
    assert hold.holding and hold.holds == 2


def test_release_restores_what_was_there():
    herd, collector, hold = make()
    collector.thresholds = (2000, 20, 5)
    herd.second(500, hold)
    hold.release()
    hold.release()
    assert collector.thresholds == (2000, 20, 5) and not hold.holding


def test_a_settled_server_process_freezes_its_start_and_collects_young_objects_less_often():
    # the real collector, in a process of its own (freezing this one would change the tests')
    import subprocess
    import sys

    script = (
        "import gc\n"
        "from pigeon.server.collections_hold import CollectionHold, settle_collector\n"
        "kept = [[i] for i in range(1000)]\n"
        "settle_collector()\n"
        "print(gc.get_freeze_count() >= 1000, gc.get_threshold())\n"
        "hold = CollectionHold(lambda: 0)\n"
        "hold._hold(0.0)\n"
        "hold.release()\n"
        "print(gc.get_threshold())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["True (20000, 10, 10)", "(20000, 10, 10)"]  # a storm's hold keeps them
