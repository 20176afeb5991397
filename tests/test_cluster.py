"""Scale-out on a real multi-node Ray cluster on this machine: one GCS, several raylets, each
with its own resources; the CLI joins it with --address or submits through Ray Jobs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ray.cluster_utils import Cluster

from .conftest import CLI, REPO, real_data, run_cli

NODE = {"num_cpus": 1, "object_store_memory": 300 * 2**20}
SLOW_SPEC = """
name: moving
trial: {model: mlp, hidden_sizes: [256], optimizer: adam, batch_size: 128, epochs: 6}
axes:
  lr: [0.001, 0.002]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def venv_on_path():
    """Ray Jobs run `python -m fmnist_ray` on the head: it must be this environment's python."""
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{old}"
    yield
    os.environ["PATH"] = old


@pytest.fixture(scope="module")
def two_nodes(venv_on_path):
    """A head (with the dashboard, for Ray Jobs) and one worker, one CPU each."""
    port = free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        **NODE, "include_dashboard": True, "dashboard_port": port})
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    cluster.jobs_address = f"http://127.0.0.1:{port}"
    yield cluster
    cluster.shutdown()


def test_sweep_with_address_runs_trials_on_two_nodes(two_nodes, tmp_path, synthetic_dir):
    # Trials of a few seconds, so that the second starts on the other node rather than after
    # the first, in the first's worker.
    longer = ["--set", "trial.model=cnn", "--set", "trial.epochs=8"]
    result = run_cli("sweep", "sweeps/smoke.yaml", "--address", two_nodes.address, *longer,
                     "--storage", str(tmp_path), "--quiet", "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    trials = pd.read_parquet(tmp_path / "smoke" / "trials.parquet")
    epochs = pd.read_parquet(tmp_path / "smoke" / "epochs.parquet")
    assert set(trials["status"]) == {"completed"}
    head, worker = two_nodes.head_node.node_id, next(iter(two_nodes.worker_nodes)).node_id
    assert set(trials["node_id"]) == {head, worker}
    assert set(epochs["node_id"]) == {head, worker}
    # The same trials again on the cluster, under another name: reused from the trial store
    # that lives in the storage, not trained.
    again = run_cli("sweep", "sweeps/smoke.yaml", "--address", two_nodes.address, *longer,
                    "--name", "again", "--storage", str(tmp_path), "--quiet", "--data-dir",
                    str(synthetic_dir))
    assert again.returncode == 0, again.stderr
    assert "2 trial(s) reused" in again.stdout
    reused = pd.read_parquet(tmp_path / "again" / "trials.parquet")
    assert set(reused["reused_from"]) == {f"smoke/{t}" for t in trials["trial_id"]}


def test_without_address_a_sweep_starts_its_own_ray_beside_a_running_cluster(
        two_nodes, tmp_path, synthetic_dir):
    result = run_cli("sweep", "sweeps/smoke.yaml", "--storage", str(tmp_path), "--quiet",
                     "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    trials = pd.read_parquet(tmp_path / "smoke" / "trials.parquet")
    cluster_nodes = {two_nodes.head_node.node_id,
                     *(node.node_id for node in two_nodes.worker_nodes)}
    assert trials["node_id"].nunique() == 1 and not set(trials["node_id"]) & cluster_nodes


def test_doctor_checks_every_node(two_nodes, tmp_path, synthetic_dir):
    fresh = tmp_path / "fresh"
    ok = run_cli("doctor", "--address", two_nodes.address, "--storage", str(fresh),
                 "--data-dir", str(synthetic_dir))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 node(s)" in ok.stdout and "FAIL" not in ok.stdout
    assert not fresh.exists(), "the checks left their empty storage folder behind"
    for check in ("ray version", "fmnist_ray version", "dataset", "storage"):
        assert f"ok   {check}:" in ok.stdout

    blocked = tmp_path / "read-only"
    blocked.write_text("a file where a directory should be")
    bad = run_cli("doctor", "--address", two_nodes.address, "--storage", str(blocked / "sub"),
                  "--data-dir", str(tmp_path / "no-data"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL storage:" in bad.stdout and "FAIL dataset:" in bad.stdout
    assert bad.stdout.count("fix:") == 2


def test_sweep_submitted_as_ray_job_is_readable_by_report(two_nodes, tmp_path, synthetic_dir):
    storage = tmp_path / "shared"
    result = run_cli("sweep", "sweeps/smoke.yaml", "--address", two_nodes.jobs_address,
                     "--storage", str(storage), "--set", "trial.epochs=1",
                     "--data-dir", str(synthetic_dir), timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted Ray Job raysubmit_" in result.stdout
    assert "sweep finished" in result.stdout  # the job's own output, streamed back
    assert "succeeded" in result.stdout
    trials = pd.read_parquet(storage / "smoke" / "trials.parquet")
    assert len(trials) == 2 and set(trials["epochs_run"]) == {1}
    page = tmp_path / "smoke.html"
    report = run_cli("report", str(storage / "smoke"), "-o", str(page))
    assert report.returncode == 0, report.stderr
    assert page.stat().st_size > 100_000


def test_ray_jobs_refuse_a_relative_storage_and_name_an_unreachable_api(tmp_path):
    relative = run_cli("sweep", "sweeps/smoke.yaml", "--address", "http://127.0.0.1:9",
                       "--storage", "results")
    assert relative.returncode == 2
    assert "--storage results: a job writes its results on the cluster" in relative.stderr
    down = run_cli("sweep", "sweeps/smoke.yaml", "--address", "http://127.0.0.1:9",
                   "--storage", str(tmp_path))
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert "cannot reach Ray Jobs at http://127.0.0.1:9" in down.stderr
    client = run_cli("sweep", "sweeps/smoke.yaml", "--address", "ray://127.0.0.1:10001")
    assert client.returncode == 2 and "--address http://HEAD:8265" in client.stderr


def test_a_dry_run_plans_for_this_machine_a_clusters_nodes_or_none_for_a_job():
    from fmnist_ray.cluster import nodes_to_plan_for
    from fmnist_ray.errors import UserError
    from fmnist_ray.results.preflight import this_machine

    assert nodes_to_plan_for(None) == [this_machine()]
    with socket.socket() as listening:  # a Ray Jobs API: reachable, its nodes seen by the job
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert nodes_to_plan_for(f"http://127.0.0.1:{listening.getsockname()[1]}") == []
    with pytest.raises(UserError, match="cannot connect"):
        nodes_to_plan_for(f"127.0.0.1:{free_port()}")


def test_a_dry_run_with_address_plans_for_the_clusters_nodes(two_nodes):
    from fmnist_ray.cluster import nodes_to_plan_for

    sizes = nodes_to_plan_for(two_nodes.address)
    assert [(n.cpus, n.gpus) for n in sizes] == [(1.0, 0.0), (1.0, 0.0)]


def _trial_result_lines(experiment: Path) -> list[dict]:
    lines = []
    for path in experiment.glob("*/result.json"):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines


@real_data
def test_a_trial_on_a_removed_node_moves_and_finishes(tmp_path, venv_on_path):
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    worker = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    head_id = cluster.head_node.node_id
    spec = tmp_path / "moving.yaml"
    spec.write_text(SLOW_SPEC)
    try:
        sweep = subprocess.Popen([*CLI, "sweep", str(spec), "--address", cluster.address,
                                  "--storage", str(tmp_path), "--quiet"], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while not any(r.get("node_id") == worker.node_id
                      for r in _trial_result_lines(tmp_path / "moving")):
            assert sweep.poll() is None and time.monotonic() < deadline, "no epoch on worker"
            time.sleep(0.2)
        cluster.remove_node(worker)
        out, err = sweep.communicate(timeout=400)
    finally:
        cluster.shutdown()
    assert sweep.returncode == 0, out + err
    trials = pd.read_parquet(tmp_path / "moving" / "trials.parquet")
    epochs = pd.read_parquet(tmp_path / "moving" / "epochs.parquet")
    assert set(trials["status"]) == {"completed"} and set(trials["epochs_run"]) == {6}
    assert not epochs.duplicated(["trial_id", "epoch"]).any() and len(epochs) == 12
    moved = epochs[epochs["node_id"] == worker.node_id]["trial_id"].unique()
    assert len(moved) == 1
    nodes_of_moved = epochs[epochs["trial_id"] == moved[0]]["node_id"]
    assert set(nodes_of_moved) == {worker.node_id, head_id}
    assert list(epochs[epochs["trial_id"] == moved[0]]["epoch"]) == [1, 2, 3, 4, 5, 6]


def _can_hide_a_directory() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_hide_a_directory(), reason="needs root and mount namespaces")
def test_node_local_storage_on_a_multi_node_cluster_is_refused(tmp_path, synthetic_dir,
                                                               venv_on_path):
    """A worker in its own mount namespace, with a tmpfs over the storage: a node-local path."""
    storage = tmp_path / "local-only"
    storage.mkdir()
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    ray_bin = Path(sys.executable).parent / "ray"
    worker = subprocess.Popen([
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        f"mount -t tmpfs tmpfs {storage} && exec {ray_bin} start --address {cluster.address} "
        f"--num-cpus 1 --object-store-memory {NODE['object_store_memory']} --block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_alive_nodes(cluster, 2)
        result = run_cli("sweep", "sweeps/smoke.yaml", "--address", cluster.address,
                         "--storage", str(storage), "--quiet", "--data-dir", str(synthetic_dir))
        doctor = run_cli("doctor", "--address", cluster.address, "--storage", str(storage),
                         "--data-dir", str(synthetic_dir))
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        cluster.shutdown()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "a local path on a 2-node cluster" in result.stderr
    assert "--storage s3://" in result.stderr
    assert not (storage / "smoke").exists()  # refused before any trial ran
    assert doctor.returncode == 1 and "FAIL storage:" in doctor.stdout
    assert "not shared" in doctor.stdout


def _wait_for_alive_nodes(cluster: Cluster, count: int, timeout: float = 60) -> None:
    import ray

    ray.init(address=cluster.address)
    try:
        deadline = time.monotonic() + timeout
        while sum(n["Alive"] for n in ray.nodes()) < count:
            assert time.monotonic() < deadline, f"fewer than {count} nodes joined"
            time.sleep(0.5)
    finally:
        ray.shutdown()


def test_cluster_yaml_passes_rays_own_schema_and_keeps_the_dashboard_private():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    assert any(t["node_config"]["InstanceType"].startswith(("g", "p"))
               for t in config["available_node_types"].values())

    broken = {**config, "max_worker": 4}  # a typo: Ray's schema rejects unknown keys
    with pytest.raises(Exception, match="max_worker"):
        validate_config(prepare_config(broken))
