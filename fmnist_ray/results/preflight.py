"""Checks made before any work starts, so that a sweep never fails or hangs once it runs:
the storage can hold the sweep, and some node can run a trial of the size the spec asks for.

Ray-free: the cluster layer hands in the nodes' sizes; for the embedded local Ray they are
this machine's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fmnist_ray.config import Resources
from fmnist_ray.errors import UserError
from fmnist_ray.results import exports
from fmnist_ray.results.driver_lock import check_no_live_driver
from fmnist_ray.results.storage import is_uri

# Ray writes trial folders (named after their settings) and files inside the sweep's folder.
ROOM_FOR_RAY = 300


@dataclass(frozen=True)
class NodeSize:
    cpus: float
    gpus: float


def local_gpu_count() -> int:
    """GPUs this machine offers, as Ray counts them, without importing torch or Ray."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def this_machine() -> NodeSize:
    return NodeSize(float(os.cpu_count() or 1), float(local_gpu_count()))


def check_resources(resources: Resources, nodes: list[NodeSize], where: str,
                    source: str = "") -> None:
    """Refuse a trial size no node has (Ray would wait for it forever); `source` names the
    spec file in the message."""
    source = f"{source}: " if source else ""
    if not nodes:
        return
    cpus, gpus = max(n.cpus for n in nodes), max(n.gpus for n in nodes)
    has = "has" if len(nodes) == 1 else "has on its largest node"
    if resources.cpu > cpus:
        raise UserError(f"{source}resources.cpu: a trial asks for {resources.cpu:g} CPUs, more "
                        f"than {where} {has} ({cpus:g}); lower resources.cpu to {cpus:g} or less, "
                        f"or run on a cluster with bigger nodes (--address)")
    if resources.gpu > 0 and not any(n.cpus >= resources.cpu and n.gpus >= resources.gpu
                                     for n in nodes):
        raise UserError(f"{source}resources.gpu: a trial asks for {resources.gpu:g} GPU(s), more "
                        f"than {where} {has} ({gpus:g}); set resources.gpu: 0 to train on CPUs, or "
                        f"run on a GPU cluster (--address)")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_storage(storage: str, name: str, create: bool = False) -> None:
    """A local `--storage` must be (or become) a writable directory that can hold `name`.

    With `create`, the directory is made and written to (a real run); without, only inspected
    (a dry run leaves nothing behind). Storage URIs are checked by the cluster layer.
    """
    if is_uri(storage):
        return
    root = Path(storage).expanduser()
    label = f"--storage {storage}"
    if root.exists() and not root.is_dir():
        raise UserError(f"{label}: is a file, not a directory; pass a directory (it is created "
                        f"if missing)")
    existing = _nearest_existing(root.absolute())
    if not existing.is_dir():
        raise UserError(f"{label}: {existing} is a file, so the directory cannot be created; "
                        f"pass another --storage")
    limit = os.pathconf(existing, "PC_NAME_MAX")
    if len(name.encode()) > limit:
        raise UserError(f"--name {name[:40]}...: {len(name.encode())} bytes, longer than this "
                        f"filesystem allows for a folder ({limit}); pass a shorter --name")
    full = len(str(root.absolute() / name).encode())
    if full + ROOM_FOR_RAY > os.pathconf(existing, "PC_PATH_MAX"):
        raise UserError(f"{label}: the path is {full} bytes, too long to hold the sweep's trial "
                        f"folders; pass a shorter --storage path")
    if not create:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(f"{label}: {existing} is not writable; pass a directory you can "
                            f"write to, or fix its permissions")
        return
    probe = root / f".write-probe-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"fmnist-ray")
    except OSError as exc:
        raise UserError(f"{label}: cannot write there ({exc.strerror or exc}); pass a directory "
                        f"you can write to, or free space / fix its permissions") from None
    finally:
        probe.unlink(missing_ok=True)


def check_sweep_folder(uri: str, resume: bool, holding_lock: bool = False) -> bool:
    """Whether the sweep at `uri` is resumed (True) or started (False); refused with the fix
    when neither can be (or another process drives it, unless this one holds its lock).
    A sweep killed before Ray saved its state is started again."""
    if not holding_lock:
        check_no_live_driver(uri)
    saved = exports.saved_state(uri)
    started = saved.started
    if resume and not started and not saved.spec:
        raise UserError(f"{uri}: no sweep to resume there; check --storage and --name, or "
                        f"run without --resume to start it")
    if resume and started and not saved.ray_state:
        raise UserError(f"{uri}: Ray's saved state (experiment_state-*.json) is not there, so "
                        f"the sweep cannot continue; its results stay there; start it again "
                        f"with --name NEW")
    if not resume and started:
        raise UserError(f"{uri}: already holds a sweep; resume it with `fmnist-ray resume {uri}`, "
                        f"or pass --name NEW to start another")
    return resume and started
