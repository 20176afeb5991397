"""The fixed costs of a local sweep: what Ray starts, what the trials run on, what is left after."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import ray

from fmnist_ray.cluster import ray_session, started_here
from fmnist_ray.cluster.session import IMPORTED_BY_RAY_START_AND_TUNE
from fmnist_ray.spec.file import parse_spec_text
from fmnist_ray.sweep import run_sweep
from fmnist_ray.training.data import load_fashion_mnist

from .conftest import REPO

SPEC = """
name: four
trial: {model: mlp, hidden_sizes: [16], optimizer: adam, batch_size: 256, epochs: 1}
axes:
  lr: [0.001, 0.002, 0.003, 0.004]
resources: {cpu: 1}
"""


def new_modules(then: str) -> set[str]:
    """The modules `then` imports in a process that has imported what the CLI has when a
    sweep starts Ray, and the modules imported before the Tune layer's import starts."""
    code = ("import importlib, sys, json, logging\n"
            "import fmnist_ray.cli.app, fmnist_ray.cluster, ray\n"
            f"for name in {IMPORTED_BY_RAY_START_AND_TUNE!r}:\n"
            "    importlib.import_module(name)\n"
            "before = set(sys.modules)\n"
            f"{then}\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))\n"
            "ray.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_ray_start_and_the_tune_import_beside_it_share_no_module_left_to_import():
    """The CLI imports the Tune layer in a thread while `ray.init` runs; a module both import
    for the first time could deadlock the two on its import lock, so those are imported first."""
    starting_ray = new_modules(
        "ray.init(address='local', num_cpus=1, include_dashboard=False, "
        "_node_ip_address='127.0.0.1', logging_level=logging.ERROR, log_to_driver=False)")
    tune_layer = new_modules("import fmnist_ray.sweep.run")
    assert "torch" in tune_layer and "aiohttp" in starting_ray  # each set is what it should be
    assert starting_ray & tune_layer == set()


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_local_trials_run_on_rays_first_workers_and_nothing_is_left_running(
        tmp_path, synthetic_dir):
    data = load_fashion_mnist(synthetic_dir)
    spec = parse_spec_text(SPEC, "four.yaml")
    with ray_session(num_cpus=2):
        assert started_here()
        node = ray._private.worker._global_node
        summary = run_sweep(spec, data, str(tmp_path))
        logs = Path(node.get_session_dir_path()) / "logs"
        workers = sorted(logs.glob("python-core-worker-*.log"))
        pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
    assert not started_here()
    assert sum(summary.statuses.values()) == 4 and not summary.errors
    # Ray starts one worker per CPU; Tune's own trial actors would each have needed a new one.
    assert len(workers) == 2, [w.name for w in workers]
    pids += [int(w.stem.rpartition("_")[2]) for w in workers]
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if running(pid)]
