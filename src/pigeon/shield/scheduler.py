"""Work classes with their own budgets, CoDel shedding by queue delay, and adaptive LIFO.

Every request the server handles runs inside ``async with scheduler.slot(work_class)``. A
class has a budget of concurrent slots; a request beyond it waits in that class's queue, and
a request the server cannot serve in time is refused with ``Unavailable(code="OVERLOADED",
retry_after=...)``, which the SDK retries with jitter. Three rules decide who is refused:

1. **CoDel per class** (Nichols & Jacobson, RFC 8289). A queue is only bad when it stands:
   when the queue delay has stayed above ``target`` for at least ``interval``, the class
   enters the dropping state and refuses its oldest waiter; it refuses the next one
   ``interval / sqrt(count)`` later (RFC 8289's control law), so the refusal rate rises
   until the delay falls back under target, and a burst that drains on its own is never
   punished. Departures from the RFC, because we schedule requests rather than packets:

   * the delay measured is the age of the *oldest* waiter, not the sojourn of the item just
     dequeued. Under FIFO they are the same thing; under LIFO (below) the item served is the
     newest, whose short wait would wrongly end the dropping state.
   * there are no packet transmissions to hang the logic on, so it runs on every event
     (an arrival, a slot freed, a waiter giving up) and on :meth:`Scheduler.tick`, which
     the server calls periodically so a queue stuck behind hung requests still drains.
     Because events can be sparse, the moment the delay first exceeded ``target`` is
     computed from the oldest waiter's arrival (``enqueued + target``) rather than taken
     as "now": the verdict does not depend on how often we look.
   * no MAXPACKET exemption (RFC 8289 section 4.2): a waiting request is not half-served.

2. **Adaptive LIFO** (Facebook, "Fail at scale", ACM Queue 2015). In the dropping state a
   class serves its *newest* waiter first: those are the requests whose clients are still
   waiting, while the oldest have likely timed out already and are the ones CoDel refuses.
   FIFO otherwise, which is fairest while the queue is short.

3. **Lowest class first.** Classes share one process, so when a higher class is dropping,
   the classes below it are the cheapest relief: while INTERACTIVE is dropping, new
   UNAUTHENTICATED arrivals are refused at once, and if it is still dropping an ``interval``
   later, new BULK and PROVEN arrivals too (while BULK or PROVEN is dropping,
   UNAUTHENTICATED arrivals are refused). A full queue refuses at once as well.

PROVEN is the unauthenticated work that came with solved proof of work (a newcomer signing
up); it has a budget and a queue of its own, so a flood of unproven calls, however long its
queue, never stands in front of it.

The clock is replaceable; nothing here sleeps, so tests drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

from pigeon.protocol.errors import Unavailable

__all__ = ["DEFAULT_BUDGETS", "Scheduler", "Slot", "WorkClass"]

Clock = Callable[[], float]


class WorkClass(enum.IntEnum):
    """Lower value, higher priority."""

    INTERACTIVE = 0  # logged-in sessions: send, read, sync
    BULK = 1  # logged-in sessions: history, media, search
    PROVEN = 2  # before login, but with solved proof of work: a newcomer, not a flood
    UNAUTHENTICATED = 3  # anything else before login: codes, sign-in


DEFAULT_BUDGETS: dict[WorkClass, int] = {
    WorkClass.INTERACTIVE: 256,
    WorkClass.BULK: 32,
    WorkClass.PROVEN: 16,
    WorkClass.UNAUTHENTICATED: 16,
}

# How far from the bottom each class stands when a higher one sheds (rule 3): the
# unproven strangers go at once, proven newcomers and bulk work an interval later.
_SHED_RANK = {WorkClass.UNAUTHENTICATED: 0, WorkClass.PROVEN: 1, WorkClass.BULK: 1,
              WorkClass.INTERACTIVE: 2}
# The classes above each one, highest first: read on every call, so not rebuilt from the enum.
_HIGHER = {wc: tuple(h for h in WorkClass if h < wc) for wc in WorkClass}

SHED_REASONS = ("codel", "queue_full", "priority")


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[None]
    enqueued: float


class _Class:
    """One work class: its budget, its queue and its CoDel state (RFC 8289 names)."""

    def __init__(self, work_class: WorkClass, budget: int, max_queue: int) -> None:
        if budget < 1 or max_queue < 0:
            raise ValueError(f"{work_class.name}: budget must be >= 1 and max_queue >= 0")
        self.work_class = work_class
        self.budget = budget
        self.max_queue = max_queue
        self.running = 0
        # Waiters in arrival order. A waiter that gave up stays in the deque (its future is
        # cancelled) until it reaches an end: removing from the middle would be O(n) per
        # cancellation, and a flood cancels a lot. ``queued`` counts the live ones.
        self.queue: deque[_Waiter] = deque()
        self.queued = 0
        self.first_above_time: float | None = None
        self.dropping = False
        self.dropping_since = 0.0
        self.drop_next = 0.0
        self.count = 0
        self.lastcount = 0
        self.admitted = 0
        self.cancelled = 0
        self.shed: dict[str, int] = dict.fromkeys(SHED_REASONS, 0)
        self.last_delay = 0.0

    def head(self) -> _Waiter | None:
        while self.queue and self.queue[0].future.done():
            self.queue.popleft()
        return self.queue[0] if self.queue else None

    def tail(self) -> _Waiter | None:
        while self.queue and self.queue[-1].future.done():
            self.queue.pop()
        return self.queue[-1] if self.queue else None

    def take(self, newest: bool) -> _Waiter | None:
        waiter = self.tail() if newest else self.head()
        if waiter is not None:
            self.queue.pop() if newest else self.queue.popleft()
            self.queued -= 1
        return waiter


class Slot:
    """``async with scheduler.slot(work_class):`` holds one slot of the class's budget."""

    __slots__ = ("_held", "_scheduler", "_work_class")

    def __init__(self, scheduler: Scheduler, work_class: WorkClass) -> None:
        self._scheduler = scheduler
        self._work_class = work_class
        self._held = False

    async def __aenter__(self) -> None:
        if self._held:
            raise RuntimeError("this slot is already held")
        await self._scheduler._acquire(self._work_class)
        self._held = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._held:
            self._held = False
            self._scheduler._release(self._work_class)


class Scheduler:
    """Budgets, queues and shedding for the three work classes; see the module docstring."""

    def __init__(
        self,
        budgets: Mapping[WorkClass, int] | None = None,
        target: float = 0.05,
        interval: float = 0.5,
        max_queue: Mapping[WorkClass, int] | int = 10_000,
        clock: Clock = time.monotonic,
        max_retry_after: float = 30.0,
    ) -> None:
        if target <= 0 or interval <= 0:
            raise ValueError("target and interval must be positive")
        merged = {**DEFAULT_BUDGETS, **(budgets or {})}
        queues = (
            dict.fromkeys(WorkClass, max_queue)
            if isinstance(max_queue, int)
            else {**dict.fromkeys(WorkClass, 10_000), **max_queue}
        )
        self.target = target
        self.interval = interval
        self.clock = clock
        self.max_retry_after = max_retry_after
        self._classes = {wc: _Class(wc, merged[wc], queues[wc]) for wc in WorkClass}

    # -- the public surface ----------------------------------------------------------------
    def slot(self, work_class: WorkClass) -> Slot:
        return Slot(self, WorkClass(work_class))

    def tick(self) -> None:
        """Run CoDel on every class now. Call it periodically (every ~``target``): without
        it a queue behind hung requests is only judged when something arrives."""
        now = self.clock()
        for state in self._classes.values():
            self._codel(state, now)
            self._dispatch(state, now)

    def shedding(self, work_class: WorkClass) -> bool:
        """Whether a new arrival of this class would be refused at once for a higher one."""
        return self._shed_by_priority(WorkClass(work_class), self.clock())

    def pressure(self, work_class: WorkClass) -> float:
        """How overloaded a class is: 0 idle, 1 at its limits, above 1 while it sheds.

        The larger of its budget in use and its queue delay over ``target``, and at least
        1.0 while the class drops or is shed for a higher one. The proof-of-work difficulty
        controller reads this for UNAUTHENTICATED.
        """
        work_class = WorkClass(work_class)
        state = self._classes[work_class]
        now = self.clock()
        value = max(state.running / state.budget, self._delay(state, now) / self.target)
        if state.dropping:
            value = max(value, 1.0 + state.count / 10)
        elif self._shed_by_priority(work_class, now):
            value = max(value, 1.0)
        return value

    def stats(self) -> dict[str, dict[str, object]]:
        """Per class, keyed by lower-case class name (metric-label friendly)."""
        now = self.clock()
        return {
            wc.name.lower(): {
                "budget": st.budget,
                "running": st.running,
                "queued": st.queued,
                "admitted": st.admitted,
                "shed": sum(st.shed.values()),
                "shed_by_reason": dict(st.shed),
                "cancelled": st.cancelled,
                "dropping": st.dropping,
                "queue_delay": self._delay(st, now),
                "last_queue_delay": st.last_delay,
            }
            for wc, st in self._classes.items()
        }

    # -- acquire and release ---------------------------------------------------------------
    async def _acquire(self, work_class: WorkClass) -> None:
        state = self._classes[work_class]
        now = self.clock()
        if self._shed_by_priority(work_class, now):
            raise self._refusal(state, "priority")
        self._codel(state, now)  # an arrival is an event: judge the queue it joins
        if state.running < state.budget and state.queued == 0:
            state.running += 1
            state.admitted += 1
            state.last_delay = 0.0
            return
        if state.queued >= state.max_queue:
            raise self._refusal(state, "queue_full")
        waiter = _Waiter(asyncio.get_running_loop().create_future(), now)
        state.queue.append(waiter)
        state.queued += 1
        self._dispatch(state, now)
        try:
            await waiter.future
        except asyncio.CancelledError:
            self._abandon(state, waiter)
            raise

    def _release(self, work_class: WorkClass) -> None:
        state = self._classes[work_class]
        state.running -= 1
        now = self.clock()
        self._codel(state, now)
        self._dispatch(state, now)

    def _abandon(self, state: _Class, waiter: _Waiter) -> None:
        """The waiting task was cancelled (client gone, request deadline)."""
        future = waiter.future
        if future.cancelled() or not future.done():
            future.cancel()
            state.queued -= 1
            state.cancelled += 1
            now = self.clock()
            self._observe(state, now)  # the oldest waiter may have just left
            self._dispatch(state, now)
        elif future.exception() is None:
            # Granted a slot, but cancelled before it could run: hand the slot on.
            self._release(state.work_class)
        # else: refused meanwhile; reading exception() above marked it retrieved.

    def _dispatch(self, state: _Class, now: float) -> None:
        while state.running < state.budget:
            waiter = state.take(newest=state.dropping)  # adaptive LIFO
            if waiter is None:
                break
            state.running += 1
            state.admitted += 1
            state.last_delay = now - waiter.enqueued
            waiter.future.set_result(None)
        if state.queued == 0:
            state.queue.clear()  # only cancelled leftovers remain
            state.dropping = False
            state.first_above_time = None
        else:
            self._observe(state, now)  # a FIFO dequeue may have ended the standing queue

    # -- CoDel (RFC 8289) --------------------------------------------------------------------
    def _delay(self, state: _Class, now: float) -> float:
        head = state.head()
        return now - head.enqueued if head is not None else 0.0

    def _observe(self, state: _Class, now: float) -> bool:
        """RFC 8289's ok_to_drop: has the queue delay stayed above target for interval?"""
        head = state.head()
        if head is None or now - head.enqueued < self.target:
            state.first_above_time = None
            return False
        if state.first_above_time is None:
            # The oldest waiter has been queued since ``enqueued``, so the delay has been
            # above target at least since enqueued + target, however late we look.
            state.first_above_time = head.enqueued + self.target + self.interval
        return now >= state.first_above_time

    def _codel(self, state: _Class, now: float) -> None:
        while True:
            ok_to_drop = self._observe(state, now)
            if state.dropping:
                if not ok_to_drop:
                    state.dropping = False
                    return
                if now < state.drop_next:
                    return
                self._refuse_oldest(state)
                state.count += 1
                state.drop_next = self._control_law(state.drop_next, state.count)
            elif ok_to_drop:
                self._refuse_oldest(state)
                state.dropping = True
                state.dropping_since = now
                # RFC 8289: if we were dropping recently, resume near the previous rate
                # instead of starting over at one refusal per interval.
                delta = state.count - state.lastcount
                recent = now - state.drop_next < 16 * self.interval
                state.count = delta if delta > 1 and recent else 1
                state.drop_next = self._control_law(now, state.count)
                state.lastcount = state.count
                return
            else:
                return

    def _control_law(self, t: float, count: int) -> float:
        return t + self.interval / math.sqrt(count)

    def _refuse_oldest(self, state: _Class) -> None:
        waiter = state.take(newest=False)
        assert waiter is not None  # _observe saw a head
        waiter.future.set_exception(self._refusal(state, "codel"))

    # -- shedding ----------------------------------------------------------------------------
    def _shed_by_priority(self, work_class: WorkClass, now: float) -> bool:
        rank_from_bottom = _SHED_RANK[work_class]
        for higher in _HIGHER[work_class]:
            state = self._classes[higher]
            if state.dropping:
                # One class below is shed at once; one more each interval it keeps dropping.
                stage = 1 + int((now - state.dropping_since) // self.interval)
                if rank_from_bottom < stage:
                    return True
        return False

    def _refusal(self, state: _Class, reason: str) -> Unavailable:
        state.shed[reason] += 1
        # Persistent overload (a high CoDel count) pushes clients back harder; the SDK adds
        # jitter so that refused clients do not return in step.
        pressure = max(1, state.count if state.dropping else 1)
        for other in self._classes.values():
            if other.work_class < state.work_class and other.dropping:
                pressure = max(pressure, other.count)
        retry_after = min(self.max_retry_after, self.interval * math.sqrt(pressure))
        return Unavailable(
            f"the server is overloaded ({state.work_class.name.lower()} work, {reason}); "
            f"retry in {retry_after:.1f} s",
            code="OVERLOADED",
            retry_after=round(retry_after, 3),
        )
