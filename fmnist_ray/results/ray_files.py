"""Ray Tune's own files in a sweep folder, read without Ray: each trial's `result.json`,
`params.json` and `error.txt`, and the experiment's `experiment_state-*.json`.

They survive a sweep that died before its last export, and say what a resume will continue.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from fmnist_ray.config import TrialConfig
from fmnist_ray.errors import UserError
from fmnist_ray.results.exports import (
    TRIALS_FILE,
    epoch_row,
    open_storage,
    read_table,
    read_text,
    trial_row,
)
from fmnist_ray.results.outcomes import ENDED, Status, failed_to_learn
from fmnist_ray.results.storage import is_uri


def _read_optional_text(fs: pafs.FileSystem, path: str) -> str | None:
    try:
        with fs.open_input_file(path) as handle:
            return handle.read().decode(errors="replace")
    except (FileNotFoundError, OSError):
        return None


@dataclass
class RayTrialLog:
    """What Ray itself wrote in one trial's folder."""

    records: list[dict[str, Any]]  # result.json: one per reported epoch
    params: dict[str, Any] | None  # params.json: the point of the search space
    errored: bool  # its last attempt failed (see _last_attempt_failed), not only an earlier one


def _last_attempt_failed(error_text: str | None, records: list[dict[str, Any]]) -> bool:
    """Whether a trial's last attempt failed, rather than an earlier one it was retried after.

    Ray appends `Failure # N (occurred at TIME)` to error.txt and restarts the count of
    `iterations_since_restore` on every retry: the last attempt failed when there were more
    failures than restarts, or a failure came after the last result.
    """
    if error_text is None:
        return False
    failures = re.findall(r"Failure # \d+ \(occurred at (\S+)\)", error_text)
    if not failures:
        return True
    restarts = sum(r.get("iterations_since_restore") == 1 for r in records) - 1
    try:
        failed_at = datetime.strptime(failures[-1], "%Y-%m-%d_%H-%M-%S").timestamp()
    except ValueError:
        return True
    return len(failures) > restarts or failed_at > records[-1].get("timestamp", 0)


def read_ray_logs(uri: str) -> dict[str, RayTrialLog]:
    """Ray's own per-trial files (`<trial dir>/result.json`, `params.json`), keyed by trial id.

    These survive a sweep that died before its last export; a half-written last line is skipped.
    """
    fs, root = open_storage(uri)
    found: dict[str, RayTrialLog] = {}
    try:
        entries = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except OSError:
        return found
    for entry in entries:
        if entry.type != pafs.FileType.Directory:
            continue
        text = _read_optional_text(fs, f"{entry.path}/result.json")
        records = []
        for line in (text or "").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "trial_id" in record and "epoch" in record:
                records.append(record)
        if not records:
            continue
        params_text = _read_optional_text(fs, f"{entry.path}/params.json")
        try:
            params = json.loads(params_text) if params_text else None
        except json.JSONDecodeError:
            params = None
        errored = _last_attempt_failed(_read_optional_text(fs, f"{entry.path}/error.txt"),
                                       records)
        found[records[-1]["trial_id"]] = RayTrialLog(records, params, errored)
    return found


def rebuild_from_ray_logs(uri: str, trial_config: Callable[[dict[str, Any]], TrialConfig],
                          asha: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Trials and epochs rows rebuilt from Ray's own files, for a sweep that never exported.

    A trial whose log stops short is `early_stopped` under ASHA when Ray marked it done, and
    `interrupted` otherwise: Ray's log alone cannot tell more.
    """
    trial_rows, epoch_rows = [], []
    for trial_id, log in sorted(read_ray_logs(uri).items()):
        by_epoch = {int(r["epoch"]): r for r in log.records}
        history = [epoch_row(trial_id, by_epoch[e]) for e in sorted(by_epoch)]
        epoch_rows += history
        last = log.records[-1]
        config = trial_config(log.params or {})
        if log.errored:
            status = Status.ERRORED
        elif last.get("diverged"):
            status = Status.DIVERGED
        elif int(last["epoch"]) >= config.epochs:
            stuck = failed_to_learn(last.get("best_val_accuracy"))
            status = Status.FAILED_TO_LEARN if stuck else Status.COMPLETED
        else:
            status = (Status.EARLY_STOPPED if asha and last.get("done")
                      else Status.INTERRUPTED)
        variant = (log.params or {}).get("variant") or {}
        trial_rows.append(trial_row(trial_id, config, variant.get("name"), status, history,
                                    last, "see error.txt in the trial folder"
                                    if log.errored else None,
                                    reused_from=last.get("reused_from")))
    return trial_rows, epoch_rows


def unfinished_trial_ids(uri: str) -> set[str]:
    """Trials Ray's last saved state holds as unfinished: the sweep was interrupted (Ctrl-C).

    Ray snapshots its state when the loop ends, before it stops the trials still running, so
    the snapshot, not the trials' final status, says which ones a resume will continue. Except
    for a paused trial that a scheduler then stopped (HyperBand ends its brackets so): Ray 2.60
    keeps it PAUSED in the snapshot, while the export, written from Ray's trials as they ended,
    holds how it ended.
    """
    if is_uri(uri):
        fs, root = open_storage(uri)
        selector = pafs.FileSelector(root)
        names = sorted(i.path for i in fs.get_file_info(selector)
                       if i.base_name.startswith("experiment_state-"))
        text = read_text(uri, names[-1].rsplit("/", 1)[-1]) if names else ""
    else:
        states = sorted(Path(uri).glob("experiment_state-*.json"))
        text = states[-1].read_text() if states else ""
    if not text:
        return set()
    statuses = {trial["trial_id"]: trial.get("status") for trial in
                (json.loads(state) for state, _ in json.loads(text).get("trial_data", []))}
    unfinished = {t for t, status in statuses.items() if status not in ("TERMINATED", "ERROR")}
    if any(statuses[t] == "PAUSED" for t in unfinished):
        unfinished -= {t for t in _exported_as_ended(uri) if statuses.get(t) == "PAUSED"}
    return unfinished


def _exported_as_ended(uri: str) -> set[str]:
    """Trials the export holds as ended (completed, stopped early, failed)."""
    try:
        trials = read_table(uri, TRIALS_FILE)
    except UserError:
        return set()
    ended = {s.value for s in ENDED}
    return set(trials.loc[trials["status"].isin(ended), "trial_id"].astype(str))


def restore_lost_checkpoint_dirs(uri: str) -> list[Path]:
    """Recreate, empty, the newest checkpoint folder of each trial if it is gone, so that Ray
    lets the trial start and `newest_valid_state` falls back to an older checkpoint.

    Ray restores a trial from the last checkpoint its `result.json` names and refuses to start
    it if that folder no longer exists.
    """
    if is_uri(uri):
        return []
    recreated = []
    for log in Path(uri).glob("*/result.json"):
        names = re.findall(r'"checkpoint_dir_name": "(checkpoint_\d+)"', log.read_text())
        folder = log.parent / max(names) if names else None
        if folder is not None and not folder.exists():
            folder.mkdir()
            recreated.append(folder)
    return recreated
