"""The benchmark scripts that need hardware this machine may lack refuse cleanly."""

import subprocess
import sys

import pytest
import torch

from .conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: it would run")
def test_gpu_packing_refuses_without_a_gpu():
    done = subprocess.run([sys.executable, "benchmarks/gpu_packing.py"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("gpu_packing: no CUDA GPU on this machine;")
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
