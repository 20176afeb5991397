"""What a resume may change in a sweep's spec: nothing (Ray restores the search as it was).
Ray-free, so the command line checks it before it prints what a resume would do."""

from __future__ import annotations

import yaml

from fmnist_ray.config import SweepSpec
from fmnist_ray.errors import UserError
from fmnist_ray.spec.file import read_stored_spec, spec_to_yaml


def stored_spec_differences(spec: SweepSpec, uri: str) -> list[str]:
    """The spec keys whose values differ from those the sweep at `uri` was started with."""
    try:
        stored = yaml.safe_load(spec_to_yaml(read_stored_spec(uri)))
    except UserError:
        return []
    current = yaml.safe_load(spec_to_yaml(spec))
    keys = sorted(set(stored) | set(current))
    return [k for k in keys if k != "description" and stored.get(k) != current.get(k)]


def check_unchanged(spec: SweepSpec, uri: str) -> None:
    """Refuse to resume the sweep at `uri` with a spec other than the one it started with."""
    changed = stored_spec_differences(spec, uri)
    if changed:
        raise UserError(f"{uri}: the spec changed since this sweep started "
                        f"({', '.join(changed)}); a resume keeps the stored spec: use "
                        f"`fmnist-ray resume` on this folder, `fmnist-ray extend` to add "
                        f"trials, or --name NEW for a new sweep")
