"""Preflight checks of a Ray cluster before a sweep: nodes, versions, storage and dataset."""

from __future__ import annotations

import platform
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from fmnist_ray import __version__
from fmnist_ray.cluster import auth
from fmnist_ray.cluster.session import alive_nodes, ray_session, run_on_each_node
from fmnist_ray.errors import UserError
from fmnist_ray.results import exports
from fmnist_ray.results.storage import is_uri

SETUP_HINT = "fix the node's setup (cluster.yaml setup_commands) and restart it"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class NodeInfo:
    node_id: str
    address: str
    cpus: float
    gpus: float
    is_head: bool


@dataclass
class Diagnosis:
    nodes: list[NodeInfo]
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def diagnose(address: str | None, storage: str, data_dir: str | None = None) -> Diagnosis:
    """Every check of the cluster at `address`, or of an embedded local Ray without one."""
    found = [auth_check(address)] if address else []
    with _no_empty_folder_left(storage), ray_session(address):
        return Diagnosis(nodes(), found + run_checks(storage, data_dir))


@contextmanager
def _no_empty_folder_left(storage: str) -> Iterator[None]:
    """The checks leave no empty local storage folder behind where there was none."""
    local = None if is_uri(storage) else Path(storage).expanduser()
    made = local is not None and not local.exists()
    try:
        yield
    finally:
        if made and local.is_dir() and not any(local.iterdir()):
            local.rmdir()


def _node_facts(probe_uri: str, data_dir: str | None) -> dict[str, Any]:
    """Runs on one node: its versions, whether it finds the dataset and can write storage."""
    import fmnist_ray
    from fmnist_ray.training.data import find_data_dir

    node_id = ray.get_runtime_context().get_node_id()
    facts: dict[str, Any] = {"ray": ray.__version__, "fmnist_ray": fmnist_ray.__version__,
                             "python": platform.python_version()}
    try:
        facts["data"] = str(find_data_dir(data_dir, download=False))
    except UserError as exc:
        facts["data_error"] = str(exc)
    try:
        exports.write_text(probe_uri, node_id, node_id)
    except Exception as exc:  # any storage failure is a finding, not a crash
        facts["storage_error"] = f"{type(exc).__name__}: {exc}"
    return facts


def _short(node: dict[str, Any]) -> str:
    return f"{node['NodeManagerAddress']}/{node['NodeID'][:8]}"


def nodes() -> list[NodeInfo]:
    return [NodeInfo(n["NodeID"], n["NodeManagerAddress"], n["Resources"].get("CPU", 0),
                     n["Resources"].get("GPU", 0), "node:__internal_head__" in n["Resources"])
            for n in alive_nodes()]


def auth_check(address: str) -> Check:
    """Whether the cluster asks for a token and accepts ours; a missing or refused token is a
    UserError (exit 2) that says how to get it. Run before connecting: it turns token mode on."""
    return Check("token authentication", True, auth.prepare(address).describe())


def run_checks(storage: str, data_dir: str | None = None) -> list[Check]:
    """Every check on the connected cluster; a failed one carries its fix."""
    probe_uri = f"{storage.rstrip('/')}/.doctor-{uuid.uuid4().hex[:8]}"
    facts = run_on_each_node(_node_facts, probe_uri, data_dir)
    checks = []
    for package, mine in (("ray", ray.__version__), ("fmnist_ray", __version__)):
        odd = [f"{_short(n)} has {f[package]}" for n, f in facts if f[package] != mine]
        checks.append(Check(f"{package} version", not odd,
                            f"{mine} on all {len(facts)} node(s)" if not odd else
                            f"{mine} here, but " + "; ".join(odd),
                            f"install {package}=={mine} on every node; {SETUP_HINT}"))
    lost = [f"{_short(n)}: {f['data_error']}" for n, f in facts if "data_error" in f]
    places = sorted({f["data"] for _, f in facts if "data" in f})
    checks.append(Check("dataset", not lost, "found in " + ", ".join(places) if not lost
                        else "; ".join(lost),
                        "apt-get install dataset-fashion-mnist on each node, or set FMNIST_DATA"))
    checks.append(_storage_check(storage, probe_uri, facts))
    return checks


def _storage_check(storage: str, probe_uri: str, facts: list[tuple[dict, dict]]) -> Check:
    """Every node wrote a probe file; this process must read each one back."""
    problems = [f"{_short(n)} cannot write: {f['storage_error']}" for n, f in facts
                if "storage_error" in f]
    for node, f in facts:
        if "storage_error" in f:
            continue
        try:
            if exports.read_text(probe_uri, node["NodeID"]) != node["NodeID"]:
                raise UserError("wrong content")
        except UserError:
            problems.append(f"{_short(node)} wrote a file this node cannot read (not shared)")
    _remove_probe(probe_uri)
    return Check("storage", not problems,
                 f"{storage} written from every node and read back" if not problems
                 else "; ".join(problems),
                 "use --storage s3://BUCKET/DIR (or gs://...) or a filesystem every node "
                 "mounts, with write access")


def _remove_probe(probe_uri: str) -> None:
    try:
        fs, root = exports.open_storage(probe_uri)
        fs.delete_dir(root)
    except Exception:  # leftovers are harmless, best effort
        pass
