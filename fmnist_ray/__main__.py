"""`python -m fmnist_ray`: the command line, as Ray Jobs run it on a cluster."""

from fmnist_ray.cli.app import app

app(prog_name="fmnist-ray")
