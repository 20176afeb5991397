"""The checks before a sweep runs, made once and before Ray starts: the storage, then what
the sweep folder allows (start, resume or extend). Ray-free."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fmnist_ray.config import SweepSpec
from fmnist_ray.results.preflight import check_storage, check_sweep_folder
from fmnist_ray.results.storage import experiment_uri
from fmnist_ray.sweep.extension import Extension, check_extension
from fmnist_ray.sweep.resumption import check_unchanged


class RunMode(str, Enum):
    """What a run does with the sweep folder it is given."""

    NEW = "new"  # start it (it must hold no sweep)
    RESUME = "resume"  # continue the sweep there (started again if Ray saved nothing)
    EXTEND = "extend"  # grow the sweep there: only new trials run


@dataclass(frozen=True)
class Prepared:
    """What the checks found: whether Ray restores a run, and what an extension adds."""

    uri: str
    restore: bool = False
    extension: Extension | None = None


def prepare_run(spec: SweepSpec, storage: str, mode: RunMode) -> Prepared:
    """Check that `spec` can run as `mode` under `storage`; refused in one line (UserError)
    with the fix (another process driving the sweep included)."""
    uri = experiment_uri(storage, spec.name)
    check_storage(storage, spec.name, create=True)
    if mode == RunMode.EXTEND:
        return Prepared(uri, extension=check_extension(spec, uri))
    restore = check_sweep_folder(uri, mode == RunMode.RESUME)
    if restore:
        check_unchanged(spec, uri)
    return Prepared(uri, restore=restore)
