"""A claim of the original study while it is judged, and the one figure that draws it.

`verdicts` builds the claims and judges them; the study index draws each claim's `Shown`
figure with its interval against the margin (`charts.claims`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from fmnist_ray.report.differences import Difference

ACCURACY_UNIT = "test accuracy, points"
LOSS_UNIT = "loss"


@dataclass
class Shown:
    """The one figure the index chart draws for a claim: the estimate with its 95% interval,
    as a difference from `reference` (0: no difference), against ±`margin`, all in `unit`."""

    what: str  # which comparison or figure, e.g. "32 minus 16"
    unit: str  # ACCURACY_UNIT (scaled to points) or LOSS_UNIT
    estimate: float
    low: float
    high: float
    margin: float
    reference: float = 0.0  # the study's figure, for a claim about a reference value

    @classmethod
    def of(cls, what: str, d: Difference, unit: str = ACCURACY_UNIT,
           reference: float = 0.0) -> Shown:
        scale = 100 if unit == ACCURACY_UNIT else 1
        return cls(what, unit, d.difference * scale, d.ci_low * scale, d.ci_high * scale,
                   d.margin * scale, reference)

    def to_json(self) -> dict:
        return {"what": self.what, "unit": self.unit, "estimate": self.estimate,
                "interval": [self.low, self.high], "margin": self.margin,
                "reference": self.reference}


@dataclass
class Claim:
    """A claim while it is judged: the differences it rests on (`labels` names each), and how
    to read them once they are decided."""

    claim: str
    sweep: str | None
    differences: list[Difference] = field(default_factory=list)
    judge: Callable[[], tuple[str, str]] | None = None  # -> (verdict, evidence)
    verdict: str = "not testable"
    evidence: str = ""
    labels: list[str] = field(default_factory=list)
    unit: str = ACCURACY_UNIT  # of the differences
    shown: Shown | None = None  # set once judged; the deciding difference by default

    def deciding(self) -> Shown | None:
        """The difference the verdict turns on: the weakest of a reproduced claim's benefits,
        the one that contradicts it, or the one an undecided claim needs most seeds for."""
        pairs = [(label, d) for label, d in zip(self.labels, self.differences, strict=True)
                 if math.isfinite(d.ci_low)]
        if not pairs:
            return None
        if self.verdict == "reproduced":
            label, d = min(pairs, key=lambda p: p[1].ci_low)
        elif self.verdict == "contradicted":
            label, d = min(pairs, key=lambda p: (p[1].verdict != "worse", p[1].ci_high))
        else:
            label, d = max(pairs, key=lambda p: (p[1].seeds_needed or 0, p[1].ci_high
                                                 - p[1].ci_low))
        return Shown.of(label, d, self.unit)

    def to_json(self) -> dict:
        main = self.differences[0] if self.differences else None
        return {"claim": self.claim, "verdict": self.verdict, "evidence": self.evidence,
                "sweep": self.sweep, "effect": main.to_json() if main else None,
                "shown": self.shown.to_json() if self.shown else None}
