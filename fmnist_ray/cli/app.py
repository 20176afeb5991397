"""The `fmnist-ray` command line: each command parses, calls the core, and turns a `UserError`
into exit code 2."""

from __future__ import annotations

import atexit
import gc
from typing import Annotated

import typer

from fmnist_ray import __version__
from fmnist_ray.cli import browse, doctor, models, sweeps, training
from fmnist_ray.cli.common import COMMANDS, Group, console

app = typer.Typer(cls=Group, add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Fashion-MNIST training studies as Ray Tune sweeps, with HTML reports.")
# After a command that imported torch and Ray, Python's last garbage collection at exit walks
# their million objects for ~0.6 s; frozen, they are skipped (results are written and closed
# before exit; only finalizers of objects in reference cycles go unrun). Registered on import,
# before Ray registers its own exit handler, so it runs after it.
atexit.register(gc.freeze)

# One example per line: Typer's rich help keeps an epilog's line breaks.
EXAMPLES = """Examples:
fmnist-ray sweep sweeps/smoke.yaml
fmnist-ray sweep sweeps/batch_size.yaml --dry-run
fmnist-ray report results/smoke -o reports/smoke.html
fmnist-ray ls
fmnist-ray show results/smoke
fmnist-ray export results/smoke -o model.pt2
fmnist-ray predict model.pt2 shirt.png"""


def _version(value: bool) -> None:
    if value:
        console.print(f"fmnist-ray {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True, epilog=EXAMPLES)
def main(
    context: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Fashion-MNIST training studies as Ray Tune sweeps, with HTML reports."""
    if context.invoked_subcommand is None:  # `fmnist-ray` alone: the help, not an error
        console.print(context.get_help(), highlight=False)
        raise typer.Exit()



# The commands in the order `--help` lists them.
ORDER = [module.__name__ for module in (training, sweeps, doctor, models, browse)]
for function, settings in sorted(COMMANDS, key=lambda c: ORDER.index(c[0].__module__)):
    app.command(**settings)(function)


if __name__ == "__main__":
    app()
