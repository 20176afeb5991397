"""The tidy export of a sweep: `trials.parquet` (one row per trial) and `epochs.parquet`.

Ray-free: the sweep layer hands in plain dicts; this module turns them into rows and writes
them to local paths or cloud URIs (anything `pyarrow.fs` opens), atomically where it can.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from fmnist_ray.config import TrialConfig
from fmnist_ray.errors import UserError
from fmnist_ray.results.outcomes import Status, failed_to_learn
from fmnist_ray.results.storage import is_uri, normalize_storage

TRIALS_FILE = "trials.parquet"
EPOCHS_FILE = "epochs.parquet"
SPEC_FILE = "spec.yaml"
EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "train_eval_loss",
                 "train_eval_accuracy", "val_loss", "val_accuracy", "epoch_seconds",
                 "eval_seconds", "images_per_second")


# The trials table's columns: the one list the export writes (`trial_row`), the report reads
# (`fmnist_ray.report.load`) and `show` prints. First the trial's id and variant, then its
# settings (every `TrialConfig` field; `hidden_sizes` as text such as `256-128`), then how it
# ended and what it scored, in the order written, each with its kind: `whole` and `number` are
# read back as floats (NaN where missing; whole ones shown as integers), `text` as strings or
# None, `reuse` columns are left as they are (written since trials are reused, see
# `fmnist_ray.sweep.store`; older exports lack them).
RESULTS = {"status": "text", "epochs_run": "whole", "best_epoch": "whole",
           "best_val_accuracy": "number", "best_val_loss": "number",
           "final_train_loss": "number", "final_val_loss": "number",
           "final_val_accuracy": "number", "test_accuracy": "number", "test_loss": "number",
           "test_confusion": "text", "params": "whole", "seconds": "number",
           "images_per_second": "number", "node_id": "text", "error": "text",
           "checkpoint": "reuse", "trial_key": "reuse", "reused_from": "reuse",
           "role": "text", "pbt_schedule": "text"}
# `role`: CONFIRMATION for the trials that confirm a search's choice with fresh seeds (see
# `fmnist_ray.sweep.confirm`); None for the sweep's own trials. Older exports lack it: it is
# read as None, without a note that it is missing.
# `pbt_schedule`: a PBT trial's settings per epoch of its weights' lineage (JSON: `epochs`, a
# list of settings; `point`, its search-space point; `source`, the trial a confirmation
# replays); None for every other trial.
CONFIRMATION = "confirmation"
LATER_COLUMNS = ("role", "pbt_schedule")


def _settings(*kinds: type) -> tuple[str, ...]:
    return tuple(n for n, f in TrialConfig.model_fields.items() if f.annotation in kinds)


def _results(*kinds: str) -> tuple[str, ...]:
    return tuple(name for name, kind in RESULTS.items() if kind in kinds)


SETTINGS = tuple(TrialConfig.model_fields)
SETTING_FLAGS = _settings(bool)  # kept as written: True / False
TRIAL_COLUMNS = ("trial_id", "variant", *SETTINGS, *RESULTS)
WHOLE_COLUMNS = (*_settings(int), *_results("whole"))
NUMBER_COLUMNS = (*_settings(int, float), *_results("whole", "number"))
TEXT_COLUMNS = ("variant", *(s for s in SETTINGS if s not in (*NUMBER_COLUMNS, *SETTING_FLAGS)),
                *_results("text"))


def trial_status(ray_status: str, last_result: dict[str, Any], epochs: int) -> Status:
    """completed | early_stopped | diverged | failed_to_learn | errored | running | pending |
    interrupted.

    A trial stopped before its first epoch is `interrupted`; a sweep stopped by Ctrl-C marks
    its unfinished trials `interrupted` afterwards. A trial that ran to its end with its best
    validation accuracy at chance is `failed_to_learn` (one ASHA stopped stays `early_stopped`:
    it was not given the time).
    """
    if ray_status == "ERROR":
        return Status.ERRORED
    if ray_status in ("PENDING", "RUNNING", "PAUSED"):
        return Status(ray_status.lower())
    if last_result.get("diverged"):
        return Status.DIVERGED
    if not last_result.get("epoch"):  # stopped before its first epoch (e.g. by a time budget)
        return Status.INTERRUPTED
    if last_result.get("epoch", 0) < epochs:
        return Status.EARLY_STOPPED
    if failed_to_learn(last_result.get("best_val_accuracy")):
        return Status.FAILED_TO_LEARN
    return Status.COMPLETED


def epoch_row(trial_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """One row per trial and epoch, with the Ray node that trained it and, in a PBT sweep, the
    settings it trained with (JSON)."""
    return {"trial_id": trial_id, **{k: result.get(k) for k in EPOCH_COLUMNS},
            "node_id": result.get("node_id"), "pbt_settings": result.get("pbt_settings")}


def read_schedule(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A trials row's PBT schedule (see `pbt_schedule` above), or None when it has none."""
    text = row.get("pbt_schedule")
    if not isinstance(text, str):
        return None
    try:
        schedule = json.loads(text)
    except ValueError:
        return None
    return schedule if isinstance(schedule, dict) and schedule.get("epochs") else None


def settings_row(config: TrialConfig) -> dict[str, Any]:
    """A trial's settings as the trials table holds them (`hidden_sizes` as e.g. `256-128`)."""
    settings = config.model_dump()
    settings["hidden_sizes"] = "-".join(str(s) for s in settings["hidden_sizes"])
    return settings


def trial_row(trial_id: str, config: TrialConfig, variant: str | None, status: str,
              history: list[dict[str, Any]], last: dict[str, Any], error: str | None,
              checkpoint: str | None = None, key: str | None = None,
              reused_from: str | None = None, role: str | None = None) -> dict[str, Any]:
    """One row per trial: its settings, status, best/final/test metrics, cost, where it ran,
    its newest checkpoint (which holds the best epoch's weights too), its content key (see
    `fmnist_ray.sweep.store`) and, for a trial not trained but reused, the sweep/trial that
    trained it; its `role` (CONFIRMATION, or None)."""
    settings = settings_row(config)
    done = [h for h in history if h.get("val_accuracy") is not None]
    row = {
        "trial_id": trial_id,
        "variant": variant,
        **settings,
        "status": status,
        "epochs_run": len(done),
        "best_epoch": last.get("best_epoch"),
        "best_val_accuracy": last.get("best_val_accuracy"),
        "best_val_loss": last.get("best_val_loss"),
        "final_train_loss": done[-1]["train_loss"] if done else None,
        "final_val_loss": done[-1]["val_loss"] if done else None,
        "final_val_accuracy": done[-1]["val_accuracy"] if done else None,
        "test_accuracy": last.get("test_accuracy"),
        "test_loss": last.get("test_loss"),
        "test_confusion": last.get("test_confusion"),
        "params": last.get("params"),
        "seconds": sum(h.get("epoch_seconds", 0) + h.get("eval_seconds", 0) for h in done),
        "images_per_second": (sum(h["images_per_second"] for h in done) / len(done)
                              if done else None),
        "node_id": last.get("node_id"),
        "error": error,
        "checkpoint": checkpoint,
        "trial_key": key,
        "reused_from": reused_from,
        "role": role,
        "pbt_schedule": last.get("pbt_schedule"),
    }
    return {column: row[column] for column in TRIAL_COLUMNS}  # the schema's order, all of it


def open_storage(uri: str) -> tuple[pafs.FileSystem, str]:
    """A filesystem and root path for a local directory or a URI such as `s3://bucket/dir`."""
    if not is_uri(uri):
        return pafs.LocalFileSystem(), normalize_storage(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises several types for bad or unreachable URIs
        raise UserError(f"{uri}: cannot open storage ({exc}); check the URI and credentials") \
            from None


@dataclass(frozen=True)
class SavedState:
    """What a sweep's folder holds, read in one listing."""

    ray_state: bool  # Ray's experiment_state-*.json: what a resume restores from
    export: bool  # trials.parquet
    spec: bool  # spec.yaml

    @property
    def started(self) -> bool:
        """Anything a resume can use. A sweep killed in its first seconds leaves only its
        spec; it is started again, not resumed."""
        return self.ray_state or self.export


def saved_state(uri: str) -> SavedState:
    fs, root = open_storage(uri)
    try:
        names = {e.base_name for e in fs.get_file_info(pafs.FileSelector(root,
                                                                          allow_not_found=True))}
    except OSError:
        names = set()
    return SavedState(ray_state=any(n.startswith("experiment_state-") for n in names),
                      export=TRIALS_FILE in names, spec=SPEC_FILE in names)


def find_sweeps(storage: str) -> list[str]:
    """The sweeps under a storage dir or URI: the folders holding a `trials.parquet`."""
    fs, root = open_storage(storage)
    try:
        entries = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except OSError:
        return []
    base = normalize_storage(storage)
    found = [f"{base}/{e.base_name}" for e in entries if e.type == pafs.FileType.Directory
             and fs.get_file_info(f"{e.path}/{TRIALS_FILE}").type == pafs.FileType.File]
    return sorted(found)


def write_bytes(fs: pafs.FileSystem, path: str, payload: bytes) -> None:
    if isinstance(fs, pafs.LocalFileSystem):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{path}.tmp-{os.getpid()}")
        try:
            tmp.write_bytes(payload)
            os.replace(tmp, path)  # a reader never sees half a file, even if this process dies
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temp file
            raise
        return
    with fs.open_output_stream(path) as stream:
        stream.write(payload)


def write_table(uri: str, filename: str, rows: list[dict[str, Any]]) -> None:
    fs, root = open_storage(uri)
    buffer = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buffer, index=False)
    write_bytes(fs, f"{root}/{filename}", buffer.getvalue())


def write_text(uri: str, filename: str, text: str) -> None:
    fs, root = open_storage(uri)
    write_bytes(fs, f"{root}/{filename}", text.encode())


def read_text(uri: str, filename: str) -> str:
    fs, root = open_storage(uri)
    try:
        with fs.open_input_file(f"{root}/{filename}") as handle:
            return handle.read().decode()
    except FileNotFoundError:
        raise UserError(f"{uri}/{filename}: not found; pass the results folder of a sweep "
                        f"(one `fmnist-ray sweep` wrote, e.g. results/smoke)") from None


def read_table(uri: str, filename: str) -> pd.DataFrame:
    fs, root = open_storage(uri)
    try:
        with fs.open_input_file(f"{root}/{filename}") as handle:
            return pd.read_parquet(io.BytesIO(handle.read()))
    except FileNotFoundError:
        raise UserError(f"{uri}/{filename}: not found; pass the results folder of a sweep "
                        f"(one `fmnist-ray sweep` wrote, e.g. results/smoke)") from None
    except Exception as exc:  # truncated or foreign file
        raise UserError(f"{uri}/{filename}: unreadable ({exc}); re-export it by resuming the "
                        f"sweep") from None


def confusion_matrix(row: pd.Series) -> list[list[int]] | None:
    """The test confusion matrix stored in a trials row, if any."""
    text = row.get("test_confusion")
    return json.loads(text) if isinstance(text, str) and text else None
