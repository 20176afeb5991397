import json
import subprocess
import sys

from typer.testing import CliRunner

from fmnist_ray.cli.app import app

from .conftest import CLI, REPO, real_data, run_cli

runner = CliRunner()


def test_train_prints_the_epoch_table_and_test_accuracy(synthetic_dir):
    result = runner.invoke(app, ["train", "--model", "mlp", "--hidden", "32", "--epochs", "2",
                                 "--data-dir", str(synthetic_dir)])
    assert result.exit_code == 0, result.output
    assert "val acc" in result.stdout and "test accuracy" in result.stdout
    assert "weights of best validation epoch" in result.stdout


def test_train_json_is_one_object_with_history(synthetic_dir):
    result = runner.invoke(app, ["train", "--model", "cnn", "--width", "4", "--epochs", "2",
                                 "--json", "--data-dir", str(synthetic_dir)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "completed"
    assert {"test_accuracy", "test_loss", "best_epoch", "history", "params", "seconds"} <= set(
        payload)
    assert [h["epoch"] for h in payload["history"]] == [1, 2]


def test_train_reports_divergence_with_the_fix(synthetic_dir):
    result = runner.invoke(app, ["train", "--model", "mlp", "--optimizer", "sgd_momentum",
                                 "--lr", "10", "--epochs", "3", "--data-dir", str(synthetic_dir)])
    assert result.exit_code == 0, result.output
    assert "diverged at epoch 1" in result.stdout and "lower --lr" in result.stdout


def test_bad_hidden_sizes_are_one_line(synthetic_dir):
    result = runner.invoke(app, ["train", "--hidden", "64,x", "--data-dir", str(synthetic_dir)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: --hidden: '64,x' is not a comma-separated")


@real_data
def test_train_on_the_real_dataset_learns():
    result = run_cli("train", "--model", "mlp", "--epochs", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["test_accuracy"] > 0.8


def test_help_report_and_spec_validation_import_neither_torch_nor_ray():
    """Commands that don't train start fast: --help, and validating a spec, stay torch-free."""
    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from fmnist_ray.cli.app import app\n"
            "from fmnist_ray.spec.file import load_spec\n"
            "from fmnist_ray.report import load_results\n"
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
            "assert CliRunner().invoke(app, ['ls', 'tests/data']).exit_code == 0\n"
            "assert CliRunner().invoke(app, ['show', 'tests/data/optimizer-2026-11-24'])"
            ".exit_code == 0\n"
            "load_spec('sweeps/batch_size.yaml')\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray'})\n"
            "assert not heavy, f'imported {heavy}'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_bare_command_and_short_help_show_usage_with_examples():
    bare = runner.invoke(app, [], prog_name="fmnist-ray")
    assert bare.exit_code == 0 and "Usage: fmnist-ray" in bare.stdout
    assert "fmnist-ray sweep sweeps/smoke.yaml" in bare.stdout
    short = runner.invoke(app, ["sweep", "-h"], prog_name="fmnist-ray")
    assert short.exit_code == 0 and "--dry-run" in short.stdout
    assert _examples(short.stdout)[0] == "fmnist-ray sweep sweeps/batch_size.yaml --dry-run"


def _examples(help_text: str) -> list[str]:
    """The lines under `Examples:` in a command's help, up to the next blank one."""
    lines = [line.strip() for line in help_text.splitlines()]
    if "Examples:" not in lines:
        return []
    start = lines.index("Examples:") + 1
    return lines[start:lines.index("", start)]


def test_help_shows_one_example_per_line_and_flags_without_a_type():
    import typer.main

    from fmnist_ray.cli.app import EXAMPLES

    wide = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    top = runner.invoke(app, ["--help"], prog_name="fmnist-ray", env=wide)
    assert _examples(top.stdout) == EXAMPLES.splitlines()[1:]
    names = sorted(typer.main.get_command(app).commands)
    several = 0
    for name in names:
        result = runner.invoke(app, [name, "--help"], prog_name="fmnist-ray", env=wide)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.stdout, f"{name} --help:\n{result.stdout}"
        examples = _examples(result.stdout)
        several += len(examples) > 1
        for line in examples:
            assert line.startswith(f"fmnist-ray {name} ") and "|" not in line, (name, line)
    assert "<bool>" not in top.stdout and several >= 3


def test_train_json_keeps_stdout_one_object_while_progress_goes_to_a_terminal(synthetic_dir):
    """Under a pseudo-terminal on stderr, the per-batch bar (with time left) is drawn there."""
    import os
    import pty

    master, slave = pty.openpty()
    child = subprocess.Popen([*CLI, "train", "--model", "mlp", "--hidden", "32", "--epochs",
                              "2", "--json", "--data-dir", str(synthetic_dir)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out, _ = child.communicate(timeout=120)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert child.returncode == 0
    assert json.loads(out)["status"] == "completed"
    assert b"mlp epoch 2/2" in drawn and b"left" in drawn and b"loss " in drawn


def test_ctrl_c_in_train_says_what_finished_and_exits_130(synthetic_dir, tmp_path):
    """SIGINT once training shows progress (stderr on a pseudo-terminal, as a user's)."""
    import os
    import pty
    import select
    import signal
    import time

    master, slave = pty.openpty()
    # The epoch table goes to a file: printed into a pipe nobody reads, hundreds of finished
    # epochs would fill it and block the child's exit on a write.
    # Ctrl-C's default action for the child even when this run was started in the background
    # of a script, where SIGINT is ignored and the ignoring is inherited.
    with (tmp_path / "stdout.txt").open("wb") as stdout:
        child = subprocess.Popen([*CLI, "train", "--model", "mlp", "--hidden", "32", "--epochs",
                                  "5000", "--data-dir", str(synthetic_dir)], cwd=REPO,
                                 stdout=stdout, stderr=slave,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    drawn, deadline = b"", time.monotonic() + 240
    while b"loss " not in drawn and time.monotonic() < deadline:  # training has begun
        if select.select([master], [], [], 1)[0]:
            drawn += os.read(master, 65536)
    child.send_signal(signal.SIGINT)
    # Keep reading, as a terminal does: a full pseudo-terminal buffer would block the child's
    # last lines (and its exit) on a write.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                chunk = b""
            drawn += chunk
            if chunk:
                continue
        if child.poll() is not None:
            break
    child.wait(timeout=5)
    os.close(master)
    assert child.returncode == 130, drawn[-2000:]
    text = drawn.decode(errors="replace")
    assert "stopped after" in text and "of 5000 epochs finished" in text
    assert "Traceback" not in text

def test_time_left_comes_from_measured_epochs_shared_by_running_trials():
    from fmnist_ray.sweep.progress import time_left

    rows = [{"status": "completed", "epochs": 4, "epochs_run": 4, "seconds": 40.0},
            {"status": "running", "epochs": 4, "epochs_run": 1, "seconds": 10.0},
            {"status": "running", "epochs": 4, "epochs_run": 0, "seconds": 0.0},
            {"status": "pending", "epochs": 4, "epochs_run": 0, "seconds": 0.0}]
    # 10 s per epoch measured; 3 + 4 + 4 epochs to run, two trials at a time: 55 s.
    assert time_left(rows, 75) == "1:15 elapsed, ~0:55 left"
    assert time_left(rows[2:], 3) == "0:03 elapsed, time left known after the first epoch"
