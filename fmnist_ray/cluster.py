"""Starting or joining a Ray cluster: an embedded local Ray on 127.0.0.1, or an existing one."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from fmnist_ray.errors import UserError


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
        raise UserError(f"cannot connect to {address} ({exc.strerror or exc}); start a cluster "
                        f"with `ray start --head` or `ray up cluster.yaml`, or drop --address"
                        ) from None


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Start an embedded local Ray (loopback only, no dashboard) or connect to `address`."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        target = address or "a local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot connect to {target} ({first}); start a cluster with "
                        f"`ray start --head` or `ray up cluster.yaml`, or drop --address") from None
    try:
        yield
    finally:
        ray.shutdown()


def current_node_id() -> str:
    return ray.get_runtime_context().get_node_id()
