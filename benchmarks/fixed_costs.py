"""Wall time of commands that train little or nothing, as a user runs them: `fmnist-ray --help`,
`fmnist-ray data` and the whole smoke sweep (2 tiny trials), each in a fresh process.

With `--before DIR` (a checkout of an earlier commit, e.g. made by `git worktree add DIR REV`),
the same commands run from that checkout too (`PYTHONPATH=DIR`, same venv), alternating with
this one, so both are measured side by side on the same machine.

    .venv/bin/python benchmarks/fixed_costs.py [--before DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "sweeps" / "smoke.yaml"


def commands(storage: Path) -> dict[str, list[str]]:
    return {"--help": ["--help"], "data": ["data"],
            "smoke sweep, whole command": ["sweep", str(SMOKE), "--storage", str(storage),
                                           "--quiet"]}


def timed(checkout: Path, args: list[str]) -> float:
    """Seconds for `python -m fmnist_ray.cli.app ARGS` run from `checkout`; fails loudly."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fmnist_ray.cli.app", *args], cwd=checkout,
                          env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: fmnist-ray {' '.join(args)} exited {done.returncode}: "
                         f"{done.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, default=None, help="an earlier checkout to compare")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", dest="json_path", default=None,
                   help="also append the result as one JSON line to this file")
    args = p.parse_args()
    checkouts = {"after": REPO} | ({"before": args.before.resolve()} if args.before else {})
    times: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    with tempfile.TemporaryDirectory(prefix="fmnist-fixed-") as tmp:
        for repeat in range(args.repeats):
            for name, checkout in checkouts.items():
                for label, argv in commands(Path(tmp) / f"{name}-{repeat}").items():
                    times[name].setdefault(label, []).append(timed(checkout, argv))
    print(f"{'command':30} " + " ".join(f"{name:>24}" for name in checkouts))
    for label in commands(Path(".")):
        cells = [" / ".join(f"{s:.2f}" for s in times[name][label]) for name in checkouts]
        print(f"{label:30} " + " ".join(f"{c:>24}" for c in cells))
    result = {"benchmark": "fixed_costs", "repeats": args.repeats,
              "median_seconds": {name: {label: statistics.median(values)
                                        for label, values in rows.items()}
                                 for name, rows in times.items()},
              "seconds": times}
    line = json.dumps(result)
    print(line)
    if args.json_path:
        with open(args.json_path, "a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
