"""The Ray Tune layer: a validated `SweepSpec` in, a finished sweep with a tidy export out.

- `run`: run, resume or extend a sweep; its summary
- `tuner`: the search space, searcher, scheduler and run settings
- `trainable`: what runs in each trial (reuse, restore, train, report, checkpoint)
- `exporter`: the live `trials.parquet` / `epochs.parquet` export and progress
- `store`: trials that ran to their end, reused by content key (Ray-free)
- `extension`: which spec changes grow a sweep (Ray-free)
- `resumption`: a resume keeps the spec it started with (Ray-free)
- `interrupts`: a Ctrl-C during start-up is never lost (Ray-free)

Names are imported on first use, so the Ray-free modules load without Ray. `ResultsExporter`
stays importable here: sweeps started by earlier versions pickled it under this path.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"ResultsExporter": "exporter", "run_sweep": "run", "SweepSummary": "run",
          "run_trial": "trainable", "build_param_space": "tuner"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
