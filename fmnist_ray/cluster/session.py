"""Starting or joining a Ray cluster: an embedded local Ray on 127.0.0.1, or an existing one."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fmnist_ray.errors import UserError
from fmnist_ray.preflight import NodeSize
from fmnist_ray.storage import is_uri

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


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Start an embedded local Ray (loopback only, no dashboard) or connect to `address`."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address and address.startswith("ray://"):
        raise UserError(f"--address {address}: Ray Client is not supported; submit through "
                        f"Ray Jobs with --address http://HEAD:8265 instead")
    try:
        if address:
            check_reachable(address)
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
    try:
        yield
    finally:
        ray.shutdown()


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
    root = Path(storage).expanduser().resolve()
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
