"""`extend --until-decided` on a real local Ray: seeds are added while the report's
comparisons are undecided, and the number of looks is kept with the sweep."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from fmnist_ray.cli.app import app

from .conftest import run_cli


@pytest.mark.slow  # two sweeps on a real local Ray: about 30 s
def test_until_decided_adds_seeds_and_records_its_looks(smoke_copy, synthetic_dir, tmp_path):
    sweep = smoke_copy / "smoke"
    done = run_cli("extend", str(sweep), "--until-decided", "--max-seeds", "2", "--seed-step",
                   "1", "--data-dir", str(synthetic_dir), "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "look 1 of at most 2 (1 seeds, each test at 0.0250): 1 of 1 comparison(s) " \
        "undecided: lr=" in out  # one seed: nothing can be decided
    assert "look 2 of at most 2 (2 seeds, each test at 0.0250)" in out
    assert "2 trial(s) kept from before as they were (same ids); 2 new" in out, out
    assert "reused" not in out  # the first seed's trials keep their ids; only new ones train
    spec = yaml.safe_load((sweep / "spec.yaml").read_text())
    assert spec["seeds"] == 2 and spec["analysis"]["looks"] == 2
    report = run_cli("report", str(sweep), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr[-2000:]
    found = json.loads((tmp_path / "r.findings.json").read_text())
    assert found["looks"] == 2 and found["noise"]["seeds"] == 2


def test_until_decided_refuses_set_in_one_line(smoke_copy):
    result = CliRunner().invoke(app, ["extend", str(smoke_copy / "smoke"), "--until-decided",
                                      "--set", "seeds=3"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--until-decided adds seeds itself" in \
        result.output
