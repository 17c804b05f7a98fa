"""Anomaly detectors: plain state machines over timestamped numbers (no I/O, no
clock of their own), each answering ANOMALY, NORMAL, or None (not sure yet).

Each has a gap between its raise and clear thresholds (hysteresis), so a value
hovering at a threshold does not flap between alert and resolution.
"""

from __future__ import annotations

from collections import deque
from enum import Enum


class Verdict(Enum):
    ANOMALY = "anomaly"
    NORMAL = "normal"


class FailureRateBaseline:
    """Failure rate per fixed bucket against an EWMA baseline of past buckets.

    A bucket with at least ``min_volume`` finished attempts whose failure rate is
    ``rise`` or more above the baseline is an ANOMALY (and is kept out of the
    baseline, so an outage does not become the new normal); below
    ``baseline + rise / 2`` it is NORMAL and updates the baseline.  The first
    ``warmup`` qualifying buckets only build the baseline.
    """

    def __init__(
        self, bucket_s: float, alpha: float, rise: float, min_volume: int, warmup: int
    ) -> None:
        self.bucket_s = bucket_s
        self.alpha = alpha
        self.rise = rise
        self.min_volume = min_volume
        self.warmup = warmup
        self.baseline = 0.0
        self.buckets_seen = 0
        self._bucket: int | None = None
        self._finished = 0
        self._failed = 0
        #: the failure rate of the last bucket judged
        self.last_rate = 0.0
        self.last_volume = 0

    def record(self, at_s: float, failed: bool) -> Verdict | None:
        """Count an attempt; the verdict on the bucket it closed, if it closed one."""
        index = int(at_s // self.bucket_s)
        verdict = None
        if self._bucket is not None and index > self._bucket:
            verdict = self._close()
        if self._bucket is None or index > self._bucket:
            self._bucket = index
        self._finished += 1
        self._failed += failed
        return verdict

    def close_until(self, now_s: float) -> Verdict | None:
        """Judge the current bucket if it ended before ``now_s``."""
        if self._bucket is None or int(now_s // self.bucket_s) <= self._bucket:
            return None
        self._bucket = None
        return self._close()

    def _close(self) -> Verdict | None:
        finished, failed = self._finished, self._failed
        self._finished = self._failed = 0
        if finished < self.min_volume:
            return None
        rate = failed / finished
        self.last_rate, self.last_volume = rate, finished
        if self.buckets_seen < self.warmup:
            self.buckets_seen += 1
            self.baseline = rate if self.buckets_seen == 1 else self._blend(rate)
            return None
        if rate >= self.baseline + self.rise:
            return Verdict.ANOMALY
        if rate < self.baseline + self.rise / 2:
            self.baseline = self._blend(rate)
            return Verdict.NORMAL
        return None

    def _blend(self, rate: float) -> float:
        return self.alpha * rate + (1 - self.alpha) * self.baseline


class SlidingCount:
    """How many things happened in the last ``window_s`` seconds, in one-second
    buckets (memory bounded by the window, not by the rate)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._buckets: deque[list[int]] = deque()
        self._total = 0

    def add(self, at_s: float) -> None:
        second = int(at_s)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += 1
        else:
            buckets.append([second, 1])
        self._total += 1

    def count(self, now_s: float) -> int:
        oldest = now_s - self.window_s
        buckets = self._buckets
        while buckets and buckets[0][0] < oldest:
            self._total -= buckets.popleft()[1]
        return self._total


class StormDetector:
    """ANOMALY once ``threshold`` events fall in the window, NORMAL when fewer
    than half of that remain."""

    def __init__(self, threshold: int, window_s: float) -> None:
        self.threshold = threshold
        self.window = SlidingCount(window_s)

    def judge(self, now_s: float) -> Verdict | None:
        count = self.window.count(now_s)
        if count >= self.threshold:
            return Verdict.ANOMALY
        if count < self.threshold / 2:
            return Verdict.NORMAL
        return None


class BacklogTrend:
    """Is the backlog (tasks due but not running) growing faster than it drains?

    Samples over the last ``window_s``: ANOMALY when it grew at ``min_rate`` tasks
    a second or faster and holds at least ``min_backlog``; NORMAL when growth fell
    under half that rate or the backlog under ``min_backlog``.  No verdict until
    the samples span half the window.
    """

    def __init__(self, window_s: float, min_rate: float, min_backlog: int) -> None:
        self.window_s = window_s
        self.min_rate = min_rate
        self.min_backlog = min_backlog
        self.samples: deque[tuple[float, float]] = deque()

    def add(self, at_s: float, backlog: float) -> Verdict | None:
        samples = self.samples
        samples.append((at_s, backlog))
        while samples and samples[0][0] < at_s - self.window_s:
            samples.popleft()
        first_s, first = samples[0]
        span = at_s - first_s
        if span < self.window_s / 2:
            return None
        rate = (backlog - first) / span
        if rate >= self.min_rate and backlog >= self.min_backlog:
            return Verdict.ANOMALY
        if rate < self.min_rate / 2 or backlog < self.min_backlog:
            return Verdict.NORMAL
        return None

    def growth_per_s(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (first_s, first), (last_s, last) = self.samples[0], self.samples[-1]
        return (last - first) / (last_s - first_s) if last_s > first_s else 0.0
