"""What a running sweep shows: a live table of its trials on a terminal, a line per change
of status elsewhere, with the time elapsed and an estimate of the time left."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from fmnist_ray.config import SweepSpec
from fmnist_ray.results.outcomes import ACTIVE, Status


def fmt(value, digits: int = 4) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else \
        f"{minutes}:{secs:02d}"


def time_left(rows: list[dict], elapsed: float) -> str:
    """Elapsed time and an estimate of the rest, from the epochs measured so far: the epochs
    still to run, at the mean measured epoch time, shared by the trials running at once."""
    epochs_done = sum(r["epochs_run"] or 0 for r in rows)
    if not epochs_done:
        return f"{_clock(elapsed)} elapsed, time left known after the first epoch"
    per_epoch = sum(r["seconds"] or 0 for r in rows) / epochs_done
    to_run = sum(max(r["epochs"] - (r["epochs_run"] or 0), 0) for r in rows
                 if r["status"] in ACTIVE)
    at_once = max(1, sum(r["status"] == Status.RUNNING for r in rows))
    return f"{_clock(elapsed)} elapsed, ~{_clock(to_run * per_epoch / at_once)} left"


def _status(row: dict) -> str:
    """A trial's status, with where its result came from when it was reused, not trained."""
    return f"{row['status']} (reused)" if row.get("reused_from") else row["status"]


def trials_table(rows: list[dict], spec: SweepSpec, elapsed: float = 0.0) -> Table:
    """The live view of a running sweep: one line per trial."""
    varied = [k for k in spec.varied_keys if k != "variant"]
    done = sum(r["status"] not in ACTIVE for r in rows)
    bound = (f" (at most: {spec.scheduler.label} stops some early)"
             if spec.scheduler.stops_early else "")
    table = Table(title=f"sweep {spec.name}: {done}/{len(rows)} trials finished, "
                        f"{time_left(rows, elapsed)}{bound}", title_justify="left")
    for column in ("trial", "status", *(["variant"] if spec.variants else []), *varied,
                   "epoch", "val acc", "best val acc", "test acc"):
        table.add_column(column, justify="left" if column in ("trial", "status") else "right",
                         no_wrap=column == "trial")
    for r in rows:
        cells = [r["trial_id"], _status(r)] + ([r["variant"] or ""] if spec.variants else [])
        cells += [str(r[k]) for k in varied]
        cells += [f"{r['epochs_run']}/{r['epochs']}", fmt(r["final_val_accuracy"]),
                  fmt(r["best_val_accuracy"]), fmt(r["test_accuracy"])]
        table.add_row(*cells)
    return table


class LogLines:
    """Progress for non-terminals: a line whenever a trial changes status."""

    def __init__(self, spec: SweepSpec, console: Console) -> None:
        self.console = console
        self.varied = spec.varied_keys
        self.seen: dict[str, str] = {}
        self.began = time.monotonic()

    def __call__(self, rows: list[dict]) -> None:
        done = sum(r["status"] not in ACTIVE for r in rows)
        for r in rows:
            if r["status"] == Status.PENDING or self.seen.get(r["trial_id"]) == r["status"]:
                continue
            self.seen[r["trial_id"]] = r["status"]
            settings = " ".join(f"{k}={r[k]}" for k in self.varied)
            scores = (f" epochs {r['epochs_run']}/{r['epochs']} best val acc "
                      f"{fmt(r['best_val_accuracy'])} test acc {fmt(r['test_accuracy'])}"
                      if r["status"] != Status.RUNNING else "")
            clock = time_left(rows, time.monotonic() - self.began)
            self.console.print(f"[{done}/{len(rows)}] trial {r['trial_id']} {_status(r)}: "
                          f"{settings}{scores} ({clock})", highlight=False, soft_wrap=True)
