"""Submitting a command to a remote Ray cluster as a Ray Job, and following its logs.

The job runs `python -m fmnist_ray ARGS` on the head node with this copy of `fmnist_ray`
(Ray uploads it as a runtime-env module) and a working dir holding the files it needs, such
as the validated spec. Inside the job the command joins the cluster with `--address auto`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fmnist_ray.cluster import auth
from fmnist_ray.errors import UserError
from fmnist_ray.results.storage import is_uri

PACKAGE_DIR = Path(__file__).resolve().parents[1]
IN_JOB_ENV = "FMNIST_RAY_IN_JOB"


def is_jobs_address(address: str | None) -> bool:
    """An `http(s)://HEAD:8265` address is the cluster's dashboard, where Ray Jobs live."""
    return address is not None and address.startswith(("http://", "https://"))


def check_remote_storage(storage: str) -> None:
    """Results written by a job must go where the user can read them back."""
    if not is_uri(storage) and not Path(storage).is_absolute():
        raise UserError(f"--storage {storage}: a job writes its results on the cluster, where "
                        f"a relative path would vanish with the job's working dir; use "
                        f"--storage s3://BUCKET/DIR (or gs://...) or an absolute shared path")


@dataclass
class JobOutcome:
    job_id: str
    status: str  # SUCCEEDED, FAILED or STOPPED
    exit_code: int | None


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    logging.getLogger("ray.dashboard").setLevel(logging.WARNING)  # no per-upload INFO lines
    auth.prepare(address)
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot reach Ray Jobs at {address} ({first}); is the cluster up "
                        f"(`ray up cluster.yaml`) and its dashboard forwarded "
                        f"(`ray dashboard cluster.yaml`, then --address http://127.0.0.1:8265)?"
                        ) from None


async def _follow(client, job_id: str, on_output: Callable[[str], None]) -> None:
    async for chunk in client.tail_job_logs(job_id):
        on_output(chunk)


def submit(address: str, args: list[str], files: dict[str, str], wait_for_agent: float = 120
           ) -> str:
    """Start `fmnist-ray ARGS` as a Ray Job with `files` (name -> text) in its working dir;
    return the job's id. A cluster whose job agent is still starting is retried for a while."""
    client = _client(address)
    deadline = time.monotonic() + wait_for_agent
    with tempfile.TemporaryDirectory(prefix="fmnist-ray-job-") as workdir:
        for name, text in files.items():
            (Path(workdir) / name).write_text(text)
        while True:
            try:
                return client.submit_job(
                    entrypoint=f"python -m fmnist_ray {shlex.join(args)}",
                    runtime_env={"working_dir": workdir, "py_modules": [str(PACKAGE_DIR)],
                                 "env_vars": {"RAY_USAGE_STATS_ENABLED": "0", IN_JOB_ENV: "1"}},
                    metadata={"tool": "fmnist-ray", "command": args[0]},
                )
            except RuntimeError as exc:
                if "No available agent" in str(exc) and time.monotonic() < deadline:
                    time.sleep(2)
                    continue
                first = str(exc).strip().splitlines()[0]
                raise UserError(f"Ray Jobs at {address} refused the job ({first})") from None


def follow(address: str, job_id: str, on_output: Callable[[str], None]) -> JobOutcome:
    """Stream the job's output to `on_output` until it ends; how it ended."""
    client = _client(address)
    asyncio.run(_follow(client, job_id, on_output))
    info = client.get_job_info(job_id)
    return JobOutcome(job_id, str(info.status.value), getattr(info, "driver_exit_code", None))


def leave_job_working_dir() -> None:
    """Inside a Ray Job, move out of the job's working dir once its files are read: Ray may
    clean it up when trial workers exit, and a deleted cwd breaks Tune's path handling."""
    if os.environ.get(IN_JOB_ENV):
        os.chdir(tempfile.gettempdir())


def follow_hint(address: str, job_id: str) -> str:
    return (f"follow it with: ray job logs --follow {job_id} --address {address}\n"
            f"stop it with: ray job stop {job_id} --address {address}")
