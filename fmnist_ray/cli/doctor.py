"""`doctor`: what a cluster or this machine lacks before a sweep."""

from __future__ import annotations

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
    from fmnist_ray.cluster.jobs import is_jobs_address

    if is_jobs_address(address):
        submit_job(address, ["doctor", "--storage", storage,
                              *(["--data-dir", str(data_dir)] if data_dir else [])],
                    {}, storage, None, no_wait=False)
        return
    from fmnist_ray.cluster.doctor import diagnose

    if not address:
        console.print("no --address: checking an embedded local Ray on this machine (pass "
                      "--address to check a cluster)", highlight=False)
    diagnosis = diagnose(address, storage, str(data_dir) if data_dir else None)
    table = Table(title=f"{len(diagnosis.nodes)} node(s)", title_justify="left")
    for column in ("node", "address", "role", "CPUs", "GPUs"):
        table.add_column(column)
    for node in diagnosis.nodes:
        table.add_row(node.node_id[:12], node.address, "head" if node.is_head else "worker",
                      f"{node.cpus:g}", f"{node.gpus:g}")
    console.print(table)
    for check in diagnosis.checks:
        mark = "[green]ok[/]  " if check.ok else "[bold red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        if not check.ok:
            console.print(f"      fix: {check.fix}", highlight=False)
    if not diagnosis.ok:
        raise typer.Exit(1)
