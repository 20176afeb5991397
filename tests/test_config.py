import textwrap

import pytest
from typer.testing import CliRunner

from fmnist_ray.cli.app import app
from fmnist_ray.config import SweepSpec, TrialConfig, grid_values, listed_values
from fmnist_ray.spec.file import load_spec

runner = CliRunner()
GOOD = """
name: ok
trial: {model: mlp, epochs: 2}
axes: {lr: [0.001, 0.01]}
"""

MALFORMED = [
    ("misspelt top-level key", "name: x\nserach: grid\n",
     "serach: unknown key; did you mean 'search'?"),
    ("misspelt trial key", "name: x\ntrial: {batchsize: 32}\n",
     "trial.batchsize: unknown key; did you mean 'batch_size'?"),
    ("another tool's name for a key", "name: x\ntrial: {learning_rate: 0.01}\n",
     "trial.learning_rate: unknown key; did you mean 'lr'?"),
    ("an abbreviation", "name: x\ntrial: {bs: 32}\n",
     "trial.bs: unknown key; did you mean 'batch_size'?"),
    ("a trial key at the top level", "name: x\nepochs: 3\n",
     "epochs: unknown key; it belongs under trial: move it there (trial: {epochs: ...})"),
    ("a top-level key under trial", "name: x\ntrial: {seeds: 2}\n",
     "trial.seeds: unknown key; it belongs at the top level of the spec: move it out of trial:"),
    ("misspelt range kind", "name: x\nsearch: random\naxes: {lr: {logunif: [0.001, 0.1]}}\n",
     "axes.lr.logunif: unknown key; did you mean 'loguniform'?"),
    ("negative learning rate", "name: x\ntrial: {lr: -0.1}\n",
     "trial.lr: must be greater than 0 (got -0.1)"),
    ("unknown model", "name: x\ntrial: {model: resnet18}\n", "did you mean 'resnet'"),
    ("warm-up too long", "name: x\ntrial: {epochs: 3, warmup_epochs: 3}\n",
     "trial: warmup_epochs 3 must be below epochs 3; lower it"),
    ("erasing chance above 1", "name: x\naxes: {augment_erasing: [0.25, 1.5]}\n",
     "axes.augment_erasing: value 1.5: must be less than or equal to 1"),
    ("schedule typo", "name: x\ntrial: {schedule: cosin}\n", "trial.schedule: must be 'constant'"),
    ("start point on a grid", "name: x\naxes: {lr: [0.1, 0.01]}\nstart_with: [{lr: 0.1}]\n",
     "start_with: only Optuna search takes start points; set search: optuna"),
    ("start point incomplete", "name: x\nsearch: optuna\nnum_samples: 4\n"
     "axes: {lr: {loguniform: [0.0001, 0.1]}, batch_size: [32, 64]}\nstart_with: [{lr: 0.01}]\n",
     "start_with.0: sets no batch_size; a start point gives every searched axis a value"),
    ("start point off its axis", "name: x\nsearch: optuna\nnum_samples: 4\n"
     "axes: {lr: {loguniform: [0.0001, 0.1]}}\nstart_with: [{lr: 0.5}]\n",
     "start_with.0.lr: 0.5 is outside the axis's range [0.0001, 0.1]; pick a value inside it"),
    ("start point names no variant", "name: x\nsearch: optuna\nnum_samples: 4\n"
     "variants: [{name: cnn, model: cnn}]\nstart_with: [{variant: cnnn}]\n",
     "start_with.0.variant: no variant named 'cnnn'; did you mean 'cnn'?"),
    ("time budget not positive", "name: x\ntime_budget_minutes: 0\n",
     "time_budget_minutes: must be greater than 0"),
    ("misspelt optimizer", "name: x\ntrial: {optimizer: adamm}\n", "did you mean 'adam'?"),
    ("zero batch size", "name: x\ntrial: {batch_size: 0}\n",
     "trial.batch_size: must be greater than or equal to 1 (got 0)"),
    ("wrong type", "name: x\ntrial: {epochs: ten}\n", "trial.epochs: must be a valid integer"),
    ("empty grid", "name: x\naxes: {lr: []}\n", "axes.lr: empty grid; list at least one value"),
    ("axis that is no setting", "name: x\naxes: {learning_rat: [0.1]}\n",
     "axes.learning_rat: not a trial setting"),
    ("reversed bounds", "name: x\nsearch: random\naxes: {dropout: {uniform: [0.5, 0.1]}}\n",
     "axes.dropout.uniform: low 0.5 must be below high 0.1"),
    ("log scale through zero", "name: x\nsearch: random\naxes: {lr: {loguniform: [0, 0.1]}}\n",
     "a log scale needs low > 0"),
    ("range under grid search", "name: x\naxes: {lr: {loguniform: [0.0001, 0.1]}}\n",
     "cannot be searched by a grid; set search: random"),
    ("grace period past max_t",
     "name: x\ntrial: {epochs: 4}\nscheduler: {type: asha, grace_period: 5}\n",
     "scheduler.grace_period: 5 exceeds max_t 4"),
    ("gpu fraction", "name: x\nresources: {gpu: 1.5}\n", "resources.gpu: must be a fraction"),
    ("YAML syntax", "name: x\ntrial: {lr: 0.1\n", "YAML syntax error"),
    ("not a mapping", "- a\n- b\n", "must be a YAML mapping"),
    ("bad value inside a grid", "name: x\naxes: {batch_size: [32, 0]}\n",
     "axes.batch_size: value 0: must be greater than or equal to 1"),
    ("missing name", "trial: {lr: 0.1}\n", "name: required key is missing"),
    ("unknown scheduler", "name: x\nscheduler: {type: median}\n", "scheduler.type: must be"),
    ("seeds under optuna", "name: x\nsearch: optuna\nseeds: 3\naxes: {lr: [0.1, 0.01]}\n",
     "seeds: Optuna search samples each point once"),
    ("mode against metric", "name: x\nmetric: val_loss\nmode: max\n",
     "mode: 'max' would optimise val_loss the wrong way"),
    ("empty choice", "name: x\nsearch: random\naxes: {optimizer: {choice: []}}\n",
     "empty choice"),
    ("variant with a typo", "name: x\nvariants: [{name: a, modle: cnn}]\n",
     "variants.0.modle: not a trial setting; did you mean 'model'?"),
    ("unknown metric", "name: x\nmetric: test_accuracy\n", "metric: must be"),
    ("bad sweep name", "name: 'my sweep!'\n", "name: use letters, digits and _ . - only"),
]


@pytest.mark.parametrize(("case", "text", "message"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_spec_gives_one_clear_line_and_exit_2(tmp_path, case, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    result = runner.invoke(app, ["sweep", str(spec), "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {spec}: ")
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_every_problem_is_reported_at_once(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\ntrial: {lr: 0, optimizer: adamm, batch_size: -1}\n")
    result = runner.invoke(app, ["sweep", str(spec), "--dry-run"])
    assert result.exit_code == 2
    assert [line.split(": ")[3] for line in result.stderr.strip().splitlines()] == [
        "trial.optimizer", "trial.lr", "trial.batch_size"]


def test_missing_spec_file(tmp_path):
    result = runner.invoke(app, ["sweep", str(tmp_path / "nope.yaml"), "--dry-run"])
    assert result.exit_code == 2
    assert "nope.yaml: spec file not found" in result.stderr


def test_set_overrides_keys_and_is_validated_like_the_file(tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text(textwrap.dedent(GOOD) + "description: Two epochs.\n")
    loaded = load_spec(spec, ["trial.epochs=3", "seeds=2", "axes.batch_size=[32, 64]"])
    assert loaded.trial.epochs == 3 and loaded.seeds == 2
    assert len(loaded.grid_points()) == 2 * 2 * 2
    # the description was written for the file: it now says what --set changed
    assert loaded.description.endswith(
        "(changed with --set trial.epochs=3, seeds=2, axes.batch_size=[32, 64])")
    assert load_spec(spec, ["name=other"]).description == load_spec(spec).description
    result = runner.invoke(app, ["sweep", str(spec), "--dry-run", "--set", "trial.lr=-1"])
    assert result.exit_code == 2 and "trial.lr: must be greater than 0" in result.stderr
    result = runner.invoke(app, ["sweep", str(spec), "--dry-run", "--set", "trial.lr"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.stderr


def test_grid_points_merge_variants_axes_and_seeds(tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text("name: arch\ntrial: {epochs: 2, seed: 10}\nseeds: 2\n"
                    "axes: {lr: [0.001]}\n"
                    "variants: [{name: small, model: mlp, hidden_sizes: [32]}, "
                    "{name: conv, model: cnn, dropout: 0.25}]\n")
    loaded = load_spec(spec)
    configs = [loaded.trial_config(p) for p in loaded.grid_points()]
    assert len(configs) == 4
    assert {(c.model, c.seed) for c in configs} == {("mlp", 10), ("mlp", 11), ("cnn", 10),
                                                    ("cnn", 11)}
    assert all(isinstance(c, TrialConfig) and c.epochs == 2 for c in configs)


def test_an_axis_is_a_grid_of_listed_values_or_a_range_a_search_samples():
    spec = SweepSpec(name="axes", search="random", axes={
        "lr": {"loguniform": [0.0001, 0.1]}, "batch_size": [32, 64],
        "optimizer": {"choice": ["adam", "sgd"]}})
    grid, log_range, choice = (spec.axes[k] for k in ("batch_size", "lr", "optimizer"))
    assert [grid_values(a) for a in (grid, log_range, choice)] == [[32, 64], None, None]
    assert [listed_values(a) for a in (grid, log_range, choice)] == [
        [32, 64], None, ["adam", "sgd"]]
    assert spec.sampled_keys == ["lr", "optimizer"]
    assert spec.grid_dimensions() == {"batch_size": [32, 64]}


def test_shipped_specs_are_valid():
    from pathlib import Path

    shipped = sorted(Path(__file__).resolve().parents[1].glob("sweeps/*.yaml"))
    assert len(shipped) >= 1
    for path in shipped:
        load_spec(path)


def test_cli_train_rejects_bad_options_with_exit_2(synthetic_dir):
    result = runner.invoke(app, ["train", "--lr", "-1", "--data-dir", str(synthetic_dir)])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --lr: must be greater than 0 (got -1.0); raise it"
    result = runner.invoke(app, ["train", "--model", "cnnn", "--data-dir", str(synthetic_dir)])
    assert result.exit_code == 2 and "did you mean 'cnn'?" in result.stderr
