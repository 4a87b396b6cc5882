"""Order statistics for timing samples: median with p10/p90 (and IQR) as the spread."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Summary", "summarize"]


def _quantile(ordered: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default, "type 7").
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Summary:
    """Median and spread of a sample (whatever unit the samples are in)."""

    n: int
    median: float
    p10: float
    p25: float
    p75: float
    p90: float
    mean: float

    @property
    def iqr(self) -> float:
        """Interquartile range."""
        return self.p75 - self.p25

    def scaled(self, factor: float) -> Summary:
        """The same summary in another unit (``factor`` times every figure)."""
        return Summary(
            self.n,
            self.median * factor,
            self.p10 * factor,
            self.p25 * factor,
            self.p75 * factor,
            self.p90 * factor,
            self.mean * factor,
        )

    def spread(self, digits: int = 0) -> str:
        """``median (p10–p90)`` for a table cell."""
        return f"{self.median:,.{digits}f} ({self.p10:,.{digits}f}–{self.p90:,.{digits}f})"


def summarize(samples: Sequence[float]) -> Summary:
    """Summarize ``samples`` (at least one)."""
    ordered = sorted(samples)
    if not ordered:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan)
    return Summary(
        n=len(ordered),
        median=_quantile(ordered, 0.5),
        p10=_quantile(ordered, 0.1),
        p25=_quantile(ordered, 0.25),
        p75=_quantile(ordered, 0.75),
        p90=_quantile(ordered, 0.9),
        mean=statistics.fmean(ordered),
    )
