import asyncio
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pigeon.protocol.errors import Unavailable
from pigeon.shield.scheduler import Scheduler, WorkClass
from clocks import FakeClock


I, B, U = WorkClass.INTERACTIVE, WorkClass.BULK, WorkClass.UNAUTHENTICATED  # noqa: E741 - initials
P = WorkClass.PROVEN


async def settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


# The event loop holds tasks weakly: a job a test does not keep would be collected while it
# holds its slot, releasing it behind the test's back. Every job stays referenced here.
_alive: list["Job"] = []


@pytest.fixture(autouse=True)
def _keep_jobs_alive():
    yield
    _alive.clear()


class Job:
    """One request: takes a slot of its class and holds it until told to finish."""

    def __init__(self, scheduler: Scheduler, work_class: WorkClass, name: str = "") -> None:
        self.name = name
        self.work_class = work_class
        self.state = "waiting"
        self.ran = False
        self.error: Unavailable | None = None
        self._go = asyncio.Event()
        self.task = asyncio.create_task(self._run(scheduler))
        _alive.append(self)

    async def _run(self, scheduler: Scheduler) -> None:
        try:
            async with scheduler.slot(self.work_class):
                self.state, self.ran = "running", True
                await self._go.wait()
            self.state = "done"
        except Unavailable as e:
            self.state, self.error = "refused", e
        except asyncio.CancelledError:
            self.state = "cancelled"
            raise

    async def finish(self) -> None:
        self._go.set()
        await settle()


async def jobs(scheduler, work_class, n, prefix="j"):
    made = [Job(scheduler, work_class, f"{prefix}{i}") for i in range(n)]
    await settle()
    return made


def one_slot_each(clock, **kw):
    return Scheduler(budgets={I: 1, B: 1, P: 1, U: 1}, clock=clock, **kw)


async def test_runs_at_once_within_budget(clock):
    s = Scheduler(budgets={I: 2}, clock=clock)
    a, b, c = await jobs(s, I, 3)
    assert [a.state, b.state, c.state] == ["running", "running", "waiting"]
    stats = s.stats()["interactive"]
    assert (stats["running"], stats["queued"], stats["admitted"]) == (2, 1, 2)
    clock.advance(0.01)
    await a.finish()
    assert (a.state, c.state) == ("done", "running")
    assert s.stats()["interactive"]["last_queue_delay"] == pytest.approx(0.01)
    await b.finish()
    await c.finish()
    assert s.stats()["interactive"] | {"last_queue_delay": 0} == {
        "budget": 2, "running": 0, "queued": 0, "admitted": 3, "shed": 0,
        "shed_by_reason": {"codel": 0, "queue_full": 0, "priority": 0}, "cancelled": 0,
        "dropping": False, "queue_delay": 0.0, "last_queue_delay": 0,
    }


async def test_fifo_while_the_queue_is_healthy(clock):
    s = one_slot_each(clock)
    holder, *waiters = await jobs(s, I, 4)
    order = []
    await holder.finish()
    for _ in range(3):
        running = next(w for w in waiters if w.state == "running")
        order.append(running.name)
        await running.finish()
    assert order == ["j1", "j2", "j3"]


async def test_a_burst_that_drains_within_interval_is_not_punished(clock):
    s = one_slot_each(clock)
    holder, *waiters = await jobs(s, I, 8)
    clock.advance(0.2)  # above target (0.05), for less than interval (0.5)
    await holder.finish()
    for w in waiters:
        clock.advance(0.04)
        s.tick()
        await w.finish()
    assert all(w.state == "done" for w in waiters)
    assert s.stats()["interactive"]["shed"] == 0


async def test_codel_drops_the_oldest_on_the_control_law(clock):
    s = one_slot_each(clock)
    holder = (await jobs(s, I, 1))[0]
    waiters = await jobs(s, I, 6)
    clock.advance(0.05 + 0.5 - 1e-6)  # target + interval, not yet
    s.tick()
    await settle()
    assert all(w.state == "waiting" for w in waiters)
    clock.advance(1e-6)
    s.tick()
    await settle()
    assert [w.state for w in waiters].count("refused") == 1
    assert waiters[0].state == "refused"  # the oldest: its client has waited longest
    err = waiters[0].error
    assert err.code == "OVERLOADED" and err.retry_after == 0.5
    assert s.stats()["interactive"]["dropping"]
    # The next refusal comes interval/sqrt(count) later, then sooner and sooner.
    expected_gaps = [0.5 / math.sqrt(n) for n in (1, 2, 3)]
    for k, gap in enumerate(expected_gaps, start=1):
        clock.advance(gap - 1e-6)
        s.tick()
        await settle()
        assert waiters[k].state == "waiting"
        clock.advance(1e-6)
        s.tick()
        await settle()
        assert waiters[k].state == "refused", k
    assert waiters[3].error.retry_after == pytest.approx(0.5 * math.sqrt(3), abs=1e-3)
    assert s.stats()["interactive"]["shed_by_reason"]["codel"] == 4
    assert holder.state == "running"


async def test_late_look_still_counts_the_time_already_spent_waiting(clock):
    # Nothing happened for 10 s: the first look must not restart the interval.
    s = one_slot_each(clock)
    await jobs(s, I, 1)
    waiters = await jobs(s, I, 2)
    clock.advance(10)
    s.tick()
    await settle()
    assert waiters[0].state == "refused"


async def test_adaptive_lifo_while_dropping(clock):
    s = one_slot_each(clock)
    holder = (await jobs(s, I, 1))[0]
    old = await jobs(s, I, 3, "old")
    clock.advance(0.3)
    new = await jobs(s, I, 2, "new")
    clock.advance(0.3)
    s.tick()  # the standing queue is over target for over an interval
    await settle()
    assert old[0].state == "refused"
    await holder.finish()
    assert new[1].state == "running"  # newest first: its client is still waiting
    assert all(j.state == "waiting" for j in (old[1], old[2], new[0]))


async def test_dropping_ends_when_the_queue_drains(clock):
    s = one_slot_each(clock)
    holder = (await jobs(s, I, 1))[0]
    waiters = await jobs(s, I, 2)
    clock.advance(1)
    s.tick()
    await settle()
    assert s.stats()["interactive"]["dropping"]
    await holder.finish()
    await waiters[1].finish()
    assert not s.stats()["interactive"]["dropping"]
    assert s.pressure(I) == 0.0


async def test_higher_class_overload_sheds_the_lowest_class_first(clock):
    s = one_slot_each(clock)
    holder = (await jobs(s, I, 1))[0]
    await jobs(s, I, 3)
    clock.advance(1)
    s.tick()
    await settle()
    assert s.stats()["interactive"]["dropping"]
    assert s.shedding(U) and not s.shedding(B) and not s.shedding(I)
    unauth, bulk = Job(s, U), Job(s, B)
    await settle()
    assert unauth.state == "refused" and unauth.error.code == "OVERLOADED"
    assert bulk.state == "running"  # BULK is shed only if shedding UNAUTHENTICATED was not enough
    assert s.stats()["unauthenticated"]["shed_by_reason"]["priority"] == 1
    assert s.pressure(U) >= 1.0
    clock.advance(0.5)  # INTERACTIVE still dropping an interval later
    assert s.shedding(B)
    late_bulk = Job(s, B)
    await settle()
    assert late_bulk.state == "refused"
    await holder.finish()
    assert holder.state == "done"


async def test_bulk_overload_sheds_unauthenticated_only(clock):
    s = one_slot_each(clock)
    await jobs(s, B, 3)
    clock.advance(1)
    s.tick()
    await settle()
    assert s.shedding(U) and not s.shedding(I)
    i, u = Job(s, I), Job(s, U)
    await settle()
    assert (i.state, u.state) == ("running", "refused")


async def test_proven_newcomers_pass_a_flood_of_unproven_work(clock):
    """Finding 14: calls that came with solved proof of work have a lane of their own, so a
    standing queue of unproven calls (and CoDel dropping them) never delays them."""
    s = one_slot_each(clock)
    flood = await jobs(s, U, 5)
    clock.advance(1)
    s.tick()
    await settle()
    assert s.stats()["unauthenticated"]["dropping"]
    newcomer = Job(s, P)
    await settle()
    assert newcomer.state == "running"
    await newcomer.finish()
    assert newcomer.state == "done"
    assert not s.shedding(P)  # a dropping UNAUTHENTICATED class sheds nothing above it
    # ... while PROVEN overload sheds the unproven first.
    s2 = one_slot_each(clock)
    await jobs(s2, P, 3)
    clock.advance(1)
    s2.tick()
    await settle()
    assert s2.shedding(U) and not s2.shedding(B) and not s2.shedding(I)
    for job in flood:
        job._go.set()


async def test_full_queue_refuses_at_once(clock):
    s = Scheduler(budgets={U: 1}, max_queue={U: 2}, clock=clock)
    await jobs(s, U, 3)
    extra = Job(s, U)
    await settle()
    assert extra.state == "refused"
    assert extra.error.retry_after == 0.5
    assert s.stats()["unauthenticated"]["shed_by_reason"]["queue_full"] == 1
    s2 = Scheduler(budgets={B: 1}, max_queue=0, clock=clock)
    await jobs(s2, B, 1)
    assert (await jobs(s2, B, 1))[0].state == "refused"


async def test_cancelled_waiter_leaves_the_queue(clock):
    s = one_slot_each(clock)
    holder, gone, kept = await jobs(s, I, 3)
    gone.task.cancel()
    await settle()
    assert gone.state == "cancelled"
    stats = s.stats()["interactive"]
    assert (stats["queued"], stats["cancelled"]) == (1, 1)
    await holder.finish()
    assert kept.state == "running"
    await kept.finish()
    assert s.stats()["interactive"]["running"] == 0


async def test_cancelled_after_being_granted_hands_the_slot_on(clock):
    s = one_slot_each(clock)
    slot = s.slot(I)
    await slot.__aenter__()
    granted, next_in_line = await jobs(s, I, 2)
    await slot.__aexit__(None, None, None)  # grants `granted`, which has not run yet
    granted.task.cancel()
    await settle()
    assert granted.state == "cancelled"
    assert next_in_line.state == "running"
    assert s.stats()["interactive"]["running"] == 1


async def test_cancelled_after_being_refused(clock):
    s = one_slot_each(clock)
    await jobs(s, I, 1)
    waiter = (await jobs(s, I, 1))[0]
    clock.advance(1)
    s.tick()  # refuses `waiter`, which has not resumed yet
    waiter.task.cancel()
    await settle()
    assert waiter.state == "cancelled"
    assert s.stats()["interactive"]["queued"] == 0


async def test_pressure(clock):
    s = Scheduler(budgets={U: 4}, clock=clock)
    assert s.pressure(U) == 0.0
    held = await jobs(s, U, 2)
    assert s.pressure(U) == 0.5
    await jobs(s, U, 3)
    assert s.pressure(U) == 1.0
    clock.advance(0.1)
    assert s.pressure(U) == pytest.approx(2.0)  # queue delay twice the target
    for j in held:
        await j.finish()
    assert s.pressure(U) < 1.0


async def test_a_slot_cannot_be_entered_twice(clock):
    s = Scheduler(clock=clock)
    slot = s.slot(I)
    async with slot:
        with pytest.raises(RuntimeError):
            await slot.__aenter__()
    assert s.stats()["interactive"]["running"] == 0


def test_configuration_is_validated():
    with pytest.raises(ValueError):
        Scheduler(budgets={I: 0})
    with pytest.raises(ValueError):
        Scheduler(target=0)
    assert Scheduler().stats()["bulk"]["budget"] == 32


# -- property test: any interleaving keeps the books straight and nobody waits forever ------
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.sampled_from(list(WorkClass)), st.integers(1, 4)),
        st.tuples(st.just("finish"), st.integers(0, 99), st.just(1)),
        st.tuples(st.just("cancel"), st.integers(0, 99), st.just(1)),
        st.tuples(st.just("advance"), st.sampled_from([0.001, 0.03, 0.2, 0.6, 2.0]),
                  st.just(1)),
        st.tuples(st.just("tick"), st.just(0), st.just(1)),
    ),
    min_size=4,
    max_size=50,
)


async def _simulate(ops):
    clock = FakeClock()
    budgets = {I: 1, B: 1, P: 1, U: 1}
    s = Scheduler(budgets=budgets, max_queue=4, clock=clock)
    made: list[Job] = []
    for op, arg, times in ops:
        if op == "arrive":
            made.extend(Job(s, arg) for _ in range(times))
        elif op in ("finish", "cancel"):
            live = [j for j in made if j.state in (("running",) if op == "finish"
                                                  else ("waiting", "running"))]
            if live:
                job = live[arg % len(live)]
                job._go.set() if op == "finish" else job.task.cancel()
        elif op == "advance":
            clock.advance(arg)
        else:
            s.tick()
        await settle()
        stats = s.stats()
        for wc in WorkClass:
            mine = [j for j in made if j.work_class == wc]
            row = stats[wc.name.lower()]
            assert row["running"] == sum(j.state == "running" for j in mine) <= budgets[wc]
            assert row["queued"] == sum(j.state == "waiting" for j in mine) <= 4
            assert row["admitted"] == sum(j.ran for j in mine)
            assert row["shed"] == sum(j.state == "refused" for j in mine)
            if row["queued"]:
                assert row["running"] == budgets[wc]  # never idle slots with work waiting
    # Liveness: once every running job finishes, each waiter runs or is refused.
    for _ in range(40):
        for j in made:
            if j.state == "running":
                j._go.set()
        clock.advance(0.1)
        s.tick()
        await settle()
    assert all(j.state in ("done", "refused", "cancelled") for j in made)
    assert all(row["running"] == row["queued"] == 0 for row in s.stats().values())
    for name, row in s.stats().items():
        for reason, n in row["shed_by_reason"].items():
            if n:
                event(f"{name} shed by {reason}")
        if row["cancelled"]:
            event(f"{name} cancelled")


@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_any_interleaving_keeps_the_books_straight(ops):
    asyncio.run(_simulate(ops))
