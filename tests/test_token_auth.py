"""A cluster as Ray starts it: `ray start --head` (what `ray up` runs on the head) turns token
authentication on when the head has a token. The CLI finds the token as Ray's clients do and
turns token mode on for itself; without the token it says so in one line. (`ray.cluster_utils.
Cluster`, used by test_cluster.py, starts its nodes without token authentication.)"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from typer.testing import CliRunner

from fmnist_ray.cli.app import app

from .conftest import run_cli

RAY = Path(sys.executable).parent / "ray"
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")
GET_IT = ("get it with `ray get-auth-token` on the head (e.g. `ray exec cluster.yaml "
          "'ray get-auth-token'`) and save it to ~/.ray/auth_token or set RAY_AUTH_TOKEN")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_of(session: int) -> set[int]:
    """The head's processes (its session) and their descendants: Ray Jobs start each driver in
    a session of its own."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry.name)] = (int(fields[1]), int(fields[3]))  # ppid, session
    found = {pid for pid, (_, sid) in parents.items() if sid == session}
    while more := {pid for pid, (ppid, _) in parents.items() if ppid in found} - found:
        found |= more
    return found


def _stop_head(session: int, grace: float = 3) -> None:
    """Stop every process the head started, by id (`ray stop` would stop every Ray on this
    machine, other tests' too): SIGTERM, then SIGKILL for those still there after `grace`."""
    pids = _processes_of(session)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()
                    and "zombie" not in _state(pid)}
            time.sleep(0.2)
        if not pids:
            return


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "status").read_text().split("State:", 1)[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray start --head` with a token in its own HOME, as on a head node of `ray up`."""
    home = tmp_path_factory.mktemp("head-home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    temp_dir = tmp_path_factory.mktemp("ray-temp")
    port, dashboard = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in AUTH_ENV}
    # Ray Jobs run `python -m fmnist_ray` on the head: this environment's python.
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{RAY.parent}{os.pathsep}{os.environ['PATH']}")
    start = subprocess.Popen(
        [str(RAY), "start", "--head", "--port", str(port), "--dashboard-port", str(dashboard),
         "--ray-client-server-port", str(free_port()),
         "--dashboard-agent-listen-port", str(free_port()),
         "--num-cpus", "2", "--object-store-memory", str(300 * 2**20),
         "--temp-dir", str(temp_dir), "--disable-usage-stats"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        output, _ = start.communicate(timeout=180)
        assert start.returncode == 0, output
        assert "Token authentication is enabled for this Ray cluster" in output, output
        jobs = f"http://127.0.0.1:{dashboard}"
        mode = requests.get(f"{jobs}/api/authentication_mode", timeout=10).json()
        assert mode == {"authentication_mode": "token"}
        yield {"gcs": f"127.0.0.1:{port}", "jobs": jobs, "home": home, "env": env}
    finally:
        start.kill()
        _stop_head(start.pid)


def test_jobs_sweep_finds_the_token_and_completes(head, tmp_path, synthetic_dir):
    storage = tmp_path / "shared"
    result = run_cli("sweep", "sweeps/smoke.yaml", "--address", head["jobs"],
                     "--storage", str(storage), "--set", "trial.epochs=1",
                     "--data-dir", str(synthetic_dir), env=head["env"], timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted Ray Job raysubmit_" in result.stdout and "succeeded" in result.stdout
    trials = pd.read_parquet(storage / "smoke" / "trials.parquet")
    assert set(trials["status"]) == {"completed"} and len(trials) == 2


def test_host_port_sweep_with_the_token_in_ray_auth_token_completes(
        head, tmp_path, synthetic_dir):
    # The token in RAY_AUTH_TOKEN, and a HOME without one: the order Ray's clients read it in.
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    token = (head["home"] / ".ray" / "auth_token").read_text()
    env = {**head["env"], "HOME": str(elsewhere), "RAY_AUTH_TOKEN": token}
    result = run_cli("sweep", "sweeps/smoke.yaml", "--address", head["gcs"], "--quiet",
                     "--storage", str(tmp_path), "--data-dir", str(synthetic_dir), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sweep finished" in result.stdout
    trials = pd.read_parquet(tmp_path / "smoke" / "trials.parquet")
    assert set(trials["status"]) == {"completed"} and len(trials) == 2
    doctor = run_cli("doctor", "--address", head["gcs"], "--storage", str(tmp_path),
                     "--data-dir", str(synthetic_dir), env=env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert (f"ok   token authentication: token from RAY_AUTH_TOKEN, accepted by the cluster "
            f"at {head['gcs']}") in doctor.stdout


@pytest.fixture
def home_without_token(tmp_path, monkeypatch):
    """This process with an empty HOME and no RAY_AUTH_* variables; afterwards Ray's token
    cache is reloaded from the real ones, so later tests in this process see their own."""
    from ray._raylet import AuthenticationTokenLoader

    for key in AUTH_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield tmp_path
    monkeypatch.undo()
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.mark.parametrize("kind", ["jobs", "gcs"])
def test_without_the_token_one_line_says_how_to_get_it(head, home_without_token, kind):
    home = home_without_token
    address = head[kind]
    result = CliRunner().invoke(app, ["sweep", "sweeps/smoke.yaml", "--address", address,
                                      "--storage", str(home)])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: the Ray cluster at {address} uses token authentication and no token was found "
        f"(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); {GET_IT}\n")
    assert "RAY_AUTH_MODE" not in os.environ  # token mode stays off for a failed connection

    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("not-the-heads-token")
    doctor = CliRunner().invoke(app, ["doctor", "--address", address,
                                      "--storage", str(home)])
    assert doctor.exit_code == 2, doctor.output
    assert doctor.stderr == (
        f"error: the Ray cluster at {address} refused the token from ~/.ray/auth_token: it is "
        f"not this cluster's; {GET_IT}\n")
