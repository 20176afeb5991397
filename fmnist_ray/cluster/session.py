"""Starting or joining a Ray cluster: an embedded local Ray on 127.0.0.1, or an existing one."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fmnist_ray.cluster import auth
from fmnist_ray.cluster.jobs import is_jobs_address
from fmnist_ray.errors import UserError
from fmnist_ray.results.preflight import NodeSize, this_machine
from fmnist_ray.results.storage import is_uri, normalize_storage

START_HINT = "start a cluster with `ray start --head` or `ray up cluster.yaml`, or drop --address"


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast with a clear message when nothing listens at `host:port` (Ray would retry
    for minutes). `auto` and addresses without a port are left to Ray."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"--address {address}: cannot connect ({exc.strerror or exc}); "
                        f"{START_HINT}") from None


# Modules that both `ray.init` and the Ray Tune layer import for the first time (Ray 2.60). They
# are imported before the two run side by side, so the two threads never wait on each other's
# module locks; tests/test_startup.py checks the list against the installed Ray.
IMPORTED_BY_RAY_START_AND_TUNE = (
    "argparse", "ctypes.util", "gettext", "socketserver", "timeit", "ray._common.usage.usage_lib",
    "ray.core.generated.usage_pb2", "ray.dashboard")

_started_here = False  # True while the embedded local Ray this process started is up


def started_here() -> bool:
    """Whether the Ray this process is connected to is the embedded one it started (its
    workers inherit this process's environment)."""
    return _started_here


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None,
                import_meanwhile: str | None = None) -> Iterator[None]:
    """Start an embedded local Ray (loopback only, no dashboard) or connect to `address`.

    `import_meanwhile` names a module to import while a local Ray starts: most of its start is
    waiting on the processes it launches, which leaves a core free for the ~2 s of importing
    torch and Ray Tune. (Joining a running cluster is quick, and imports other modules.)"""
    global _started_here
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address and address.startswith("ray://"):
        raise UserError(f"--address {address}: Ray Client is not supported; submit through "
                        f"Ray Jobs with --address http://HEAD:8265 instead")
    try:
        with _importing(None if address else import_meanwhile):
            _connect(address, num_cpus)
    except BaseException:
        if ray.is_initialized():  # the import failed (or was interrupted) once Ray was up
            ray.shutdown()
        raise
    _started_here = not address
    try:
        yield
    finally:
        if _started_here:
            _stop_autoscaler_monitor()
        _started_here = False
        ray.shutdown()


def _connect(address: str | None, num_cpus: int | None) -> None:
    try:
        if address:
            check_reachable(address)
            auth.prepare(address)
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            # address="local": always a new Ray, never one a `ray start` left running here.
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                     _node_ip_address="127.0.0.1", logging_level=logging.ERROR,
                     log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        target = address or "a local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot connect to {target} ({first}); {START_HINT}") from None


@contextmanager
def _importing(module: str | None) -> Iterator[None]:
    """Import `module` in a thread for the duration of the block; its import error, if any,
    is raised once the block is done. An interrupted block does not wait for the import."""
    if module is None:
        yield
        return
    for shared in IMPORTED_BY_RAY_START_AND_TUNE:
        with contextlib.suppress(ImportError):
            importlib.import_module(shared)
    failure: list[BaseException] = []

    def import_module() -> None:
        try:
            importlib.import_module(module)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)

    thread = threading.Thread(target=import_module, name=f"import {module}", daemon=True)
    thread.start()
    yield
    thread.join()
    if failure:
        raise failure[0]


def _stop_autoscaler_monitor() -> None:
    """Kill the autoscaler monitor of the local Ray before `ray.shutdown`: a local Ray has
    nothing to scale, and once the GCS is gone the monitor ignores the shutdown's SIGTERM, so
    the shutdown waits a full second for it (Ray 2.60) before it kills it anyway."""
    node = getattr(ray._private.worker, "_global_node", None)
    with contextlib.suppress(Exception):  # only a second at stake
        node.kill_monitor(check_alive=False)


def current_node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def alive_nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes, as `ray.nodes()` describes them."""
    return [node for node in ray.nodes() if node.get("Alive")]


def node_sizes() -> list[NodeSize]:
    """The CPUs and GPUs of each live node, and of each node type an autoscaler may start."""
    sizes = [NodeSize(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0))
             for n in alive_nodes()]
    try:
        config = ray._private.state.state.get_cluster_config()
    except Exception:  # no autoscaler, or a Ray that keeps no cluster config
        config = None
    for group in getattr(config, "node_group_configs", None) or []:
        if group.max_count != 0:
            sizes.append(NodeSize(group.resources.get("CPU", 0), group.resources.get("GPU", 0)))
    return sizes


def nodes_to_plan_for(address: str | None) -> list[NodeSize]:
    """The nodes a dry run plans for: this machine, or those of the cluster at `address`
    (a Ray Jobs address is only checked for reachability: its nodes are seen by the job)."""
    if not address:
        return [this_machine()]
    check_reachable(address)
    if is_jobs_address(address):
        return []
    with ray_session(address):
        return node_sizes()


def run_on_each_node(function: Callable[..., Any], *args: Any, timeout: float = 120
                     ) -> list[tuple[dict[str, Any], Any]]:
    """Run `function(*args)` once on every live node (no CPU reserved); (node, result) pairs."""
    nodes = alive_nodes()
    task = ray.remote(num_cpus=0, max_retries=0)(function)
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote(*args) for node in nodes]
    return list(zip(nodes, ray.get(refs, timeout=timeout), strict=True))


def _path_exists(path: str) -> bool:
    return Path(path).exists()


def check_shared_storage(storage: str) -> None:
    """On a multi-node cluster a local `--storage` must be a filesystem every node sees:
    trials write their checkpoints from whichever node runs them. Checked before any trial."""
    if is_uri(storage) or len(alive_nodes()) < 2:
        return
    root = Path(normalize_storage(storage))
    root.mkdir(parents=True, exist_ok=True)
    marker = root / f".shared-storage-probe-{uuid.uuid4().hex}"
    marker.write_text("fmnist-ray")
    try:
        seen = run_on_each_node(_path_exists, str(marker))
    finally:
        marker.unlink(missing_ok=True)
    blind = [node for node, ok in seen if not ok]
    if blind:
        names = ", ".join(f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})" for n in blind)
        raise UserError(f"--storage {storage}: a local path on a {len(seen)}-node cluster, and "
                        f"node(s) {names} cannot see it; use storage every node can write: "
                        f"--storage s3://BUCKET/DIR (or gs://...) or a shared filesystem path")
