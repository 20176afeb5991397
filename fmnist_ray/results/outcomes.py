"""How a finished run is judged, without torch or Ray: did it learn at all?

Fashion-MNIST has 10 balanced classes, so a model that learned nothing scores about 0.10 and
its loss sits near ln 10 = 2.30. A run whose best validation accuracy stays within a few
points of that is `failed_to_learn`: a result about its settings, not a trained model.
"""

from __future__ import annotations

import math
from enum import StrEnum

CHANCE_ACCURACY = 0.10
CHANCE_LOSS = math.log(10)
# Best validation accuracy at or below chance + this margin: the run never learned.
LEARNED_MARGIN = 0.05


def failed_to_learn(best_val_accuracy: float | None) -> bool:
    """True when a run's best validation accuracy never rose clearly above chance."""
    if best_val_accuracy is None or not math.isfinite(best_val_accuracy):
        return False
    return 0 <= best_val_accuracy <= CHANCE_ACCURACY + LEARNED_MARGIN


class Status(StrEnum):
    """How a trial stands or ended, as `trials.parquet` records it."""

    COMPLETED = "completed"
    EARLY_STOPPED = "early_stopped"  # by ASHA or a time budget
    FAILED_TO_LEARN = "failed_to_learn"
    DIVERGED = "diverged"
    ERRORED = "errored"
    RUNNING = "running"
    PENDING = "pending"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"  # the sweep stopped (Ctrl-C) before it ended


# Trials that ran to their end: their results are the same in any sweep, so they are reused.
RAN_TO_END = (Status.COMPLETED, Status.DIVERGED, Status.FAILED_TO_LEARN)
# Trials that will not train again: run to their end, stopped early, or errored.
ENDED = (*RAN_TO_END, Status.EARLY_STOPPED, Status.ERRORED)
# Trials a running sweep has not finished yet.
ACTIVE = (Status.PENDING, Status.RUNNING, Status.PAUSED)
