"""`doctor`: what a cluster or this machine lacks before a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fmnist_ray.cli.common import Address, DataDir, command, console, submit_job, user_errors


@command(epilog=(
    "Example: fmnist-ray doctor --address http://HEAD:8265 --storage s3://bucket/runs"))
@user_errors
def doctor(
    address: Address = None,
    storage: Annotated[str, typer.Option(
        help="The storage your sweeps will use: checked writable from every node.")
    ] = "./results",
    data_dir: DataDir = None,
) -> None:
    """Check a cluster before a sweep: nodes, versions, storage and dataset; exit 1 on a fault."""
    from fmnist_ray.cluster import ray_session
    from fmnist_ray.cluster.jobs import is_jobs_address

    if is_jobs_address(address):
        submit_job(address, ["doctor", "--storage", storage,
                              *(["--data-dir", str(data_dir)] if data_dir else [])],
                    {}, storage, None, no_wait=False)
        return
    from fmnist_ray.cluster import doctor as checks

    if not address:
        console.print("no --address: checking an embedded local Ray on this machine (pass "
                      "--address to check a cluster)", highlight=False)
    from fmnist_ray.results.storage import is_uri

    local = None if is_uri(storage) else Path(storage).expanduser()
    made = local is not None and not local.exists()
    found = [checks.auth_check(address)] if address else []
    try:
        with ray_session(address):
            nodes = checks.nodes()
            found += checks.run_checks(storage, str(data_dir) if data_dir else None)
    finally:
        if made and local.is_dir() and not any(local.iterdir()):
            local.rmdir()  # the check leaves no empty folder behind
    table = Table(title=f"{len(nodes)} node(s)", title_justify="left")
    for column in ("node", "address", "role", "CPUs", "GPUs"):
        table.add_column(column)
    for node in nodes:
        table.add_row(node.node_id[:12], node.address, "head" if node.is_head else "worker",
                      f"{node.cpus:g}", f"{node.gpus:g}")
    console.print(table)
    for check in found:
        mark = "[green]ok[/]  " if check.ok else "[bold red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        if not check.ok:
            console.print(f"      fix: {check.fix}", highlight=False)
    if not all(c.ok for c in found):
        raise typer.Exit(1)
