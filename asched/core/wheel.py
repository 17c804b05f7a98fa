"""A hierarchical hashed timer wheel with exact (sub-millisecond) deadlines.

Time is float seconds; buckets are 1 ms ticks.  Level 0 holds 256 one-tick
buckets, levels 1-3 hold 64 buckets each 64x wider (≈256 ms, ≈16 s, ≈17 min),
and a top level keyed by ≈18.6 h spans holds everything further out.  An entry
sits at the lowest level whose parent bucket it shares with the cursor, so
insert and cancel are O(1); a bucket is cascaded to lower levels only when the
cursor reaches it.

The wheel never reads a clock: :meth:`advance` takes ``now_s`` and returns the
items due by then, in (due, insertion) order, and :meth:`next_deadline` tells
the caller when to call it again.  Level-0 deadlines are exact, so a caller
that arms one timer at that instant is never early and late only by its loop.
"""

from __future__ import annotations

from heapq import heappop, heappush
from math import floor
from operator import attrgetter
from typing import Generic, TypeVar

T = TypeVar("T")

# Bit widths of each level's bucket index; level k's tick shift is the sum of
# the widths below it.
_WIDTHS = (8, 6, 6, 6)
_SHIFTS = (0, 8, 14, 20)
_PARENT_SHIFTS = (8, 14, 20, 26)
_MASKS = tuple((1 << w) - 1 for w in _WIDTHS)
_TOP_SHIFT = 26
_LEVELS = len(_WIDTHS)
_DUE = attrgetter("due_s")


class Timer(Generic[T]):
    """Handle for one armed item; pass it to :meth:`TimerWheel.cancel`."""

    __slots__ = ("due_s", "item")

    def __init__(self, due_s: float, item: T | None) -> None:
        self.due_s = due_s
        self.item = item

    @property
    def active(self) -> bool:
        return self.item is not None


def _tick(seconds: float) -> int:
    scaled = seconds * 1000.0
    tick = int(scaled) if scaled >= 0 else floor(scaled)
    # ``seconds * 1000`` can round up to the next integer; a bucket must never
    # start after the items in it, or next_deadline() would be late.
    return tick - 1 if tick / 1000.0 > seconds else tick


def _lowest_bit(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


class TimerWheel(Generic[T]):
    """Holds future items and hands them back once their due time has passed."""

    __slots__ = ("_buckets", "_cursor", "_live", "_masks", "_top", "_top_keys")

    def __init__(self, now_s: float = 0.0) -> None:
        self._cursor = _tick(now_s)
        self._buckets: list[list[list[Timer[T]] | None]] = [[None] * (1 << w) for w in _WIDTHS]
        self._masks = [0] * _LEVELS
        self._top: dict[int, list[Timer[T]]] = {}
        self._top_keys: list[int] = []
        self._live = 0

    def __len__(self) -> int:
        """Number of live (armed, not cancelled, not fired) items."""
        return self._live

    # -- insert / cancel ---------------------------------------------------------

    def insert(self, due_s: float, item: T) -> Timer[T]:
        timer = Timer(due_s, item)
        self._place(timer)
        self._live += 1
        return timer

    def cancel(self, timer: Timer[T]) -> bool:
        """Disarm ``timer``; its slot is reclaimed lazily.  False if already inactive."""
        if timer.item is None:
            return False
        timer.item = None
        self._live -= 1
        return True

    def _place(self, timer: Timer[T]) -> None:
        cursor = self._cursor
        due_s = timer.due_s
        scaled = due_s * 1000.0
        tick = int(scaled) if scaled >= 0 else floor(scaled)
        if tick / 1000.0 > due_s:
            tick -= 1  # see _tick
        if tick < cursor:
            tick = cursor
        diff = tick ^ cursor
        # Unrolled level choice: this runs for every insert.  A negative diff means
        # the cursor and the tick straddle zero: only the top level can hold it.
        if diff < 0 or diff >= 0x4000000:
            key = tick >> _TOP_SHIFT
            top_bucket = self._top.get(key)
            if top_bucket is None:
                self._top[key] = [timer]
                heappush(self._top_keys, key)
            else:
                top_bucket.append(timer)
            return
        if diff < 0x100:
            level, index = 0, tick & 0xFF
        elif diff < 0x4000:
            level, index = 1, (tick >> 8) & 0x3F
        elif diff < 0x100000:
            level, index = 2, (tick >> 14) & 0x3F
        else:
            level, index = 3, (tick >> 20) & 0x3F
        buckets = self._buckets[level]
        bucket = buckets[index]
        if bucket is None:
            buckets[index] = [timer]
            self._masks[level] |= 1 << index
        else:
            bucket.append(timer)

    # -- time --------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`advance` next has work: exact for the nearest millisecond,
        the start of the bucket for anything further.  Never after a live due time."""
        while True:
            found = self._earliest_bucket()
            if found is None:
                return None
            level, index = found
            if level == 0:
                bucket = self._buckets[0][index]
                assert bucket is not None
                best: float | None = None
                for timer in bucket:
                    if timer.item is not None and (best is None or timer.due_s < best):
                        best = timer.due_s
                if best is not None:
                    return best
                self._clear(0, index)
                continue
            return self._bucket_start(level, index) / 1000.0

    def advance(self, now_s: float) -> list[T]:
        """Remove and return every live item with ``due_s <= now_s``, oldest first."""
        now_tick = _tick(now_s)
        fired: list[T] = []
        while True:
            found = self._earliest_bucket()
            if found is None:
                break
            level, index = found
            start = self._bucket_start(level, index)
            # Either test admits the bucket whose start next_deadline() reported;
            # the cursor's own bucket, which holds items inserted already overdue,
            # is always checked, even for a now_s before the cursor.
            if start > now_tick and start / 1000.0 > now_s and start != self._cursor:
                break
            self._cursor = start
            if level == 0:
                if not self._fire_bucket(index, now_s, fired):
                    return fired
            else:
                self._cascade(level, index)
        if now_tick > self._cursor:
            self._cursor = now_tick
        return fired

    def _fire_bucket(self, index: int, now_s: float, fired: list[T]) -> bool:
        """Fire the due entries of a level-0 bucket; False if some are not due yet."""
        bucket = self._buckets[0][index]
        assert bucket is not None
        due: list[Timer[T]] = []
        waiting: list[Timer[T]] = []
        for timer in bucket:
            if timer.item is None:
                continue
            (due if timer.due_s <= now_s else waiting).append(timer)
        if len(due) > 1:
            # Stable: equal due times keep bucket order, which is insertion order
            # (cascading moves a bucket down whole, before anything newer lands there).
            due.sort(key=_DUE)
        for timer in due:
            fired.append(timer.item)  # type: ignore[arg-type]
            timer.item = None
        self._live -= len(due)
        if waiting:
            self._buckets[0][index] = waiting
            return False
        self._clear(0, index)
        return True

    def _cascade(self, level: int, index: int) -> None:
        bucket: list[Timer[T]] | None
        if level == _LEVELS:
            bucket = self._top.pop(heappop(self._top_keys))
        else:
            bucket = self._buckets[level][index]
            self._clear(level, index)
        assert bucket is not None
        for timer in bucket:
            if timer.item is not None:
                self._place(timer)

    def _clear(self, level: int, index: int) -> None:
        self._buckets[level][index] = None
        self._masks[level] &= ~(1 << index)

    def _earliest_bucket(self) -> tuple[int, int] | None:
        # Lower levels always precede higher ones: an entry at level k shares its
        # level-(k+1) bucket with the cursor, and every higher bucket lies beyond.
        masks = self._masks
        for level in range(_LEVELS):
            if masks[level]:
                return level, _lowest_bit(masks[level])
        if self._top_keys:
            return _LEVELS, self._top_keys[0]
        return None

    def _bucket_start(self, level: int, index: int) -> int:
        if level == _LEVELS:
            return index << _TOP_SHIFT
        parent = self._cursor >> _PARENT_SHIFTS[level] << _PARENT_SHIFTS[level]
        return parent | (index << _SHIFTS[level])
