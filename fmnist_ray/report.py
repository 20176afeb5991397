"""The study report: one self-contained, offline HTML page per sweep, written from its results.

Ray-free: it reads the tidy export (`trials.parquet`, `epochs.parquet`, `spec.yaml`) from a
local directory or a cloud URI, works on partial results (and says what is missing), and
inlines Vega, Vega-Lite and Vega-Embed once per page so it renders with no network.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import yaml

from fmnist_ray import report_charts as charts
from fmnist_ray.config import Range, SweepSpec, TrialConfig, parse_spec
from fmnist_ray.data import CLASS_NAMES
from fmnist_ray.errors import UserError
from fmnist_ray.report_charts import Axis, format_value
from fmnist_ray.results import (
    EPOCH_COLUMNS,
    EPOCHS_FILE,
    SPEC_FILE,
    TRIALS_FILE,
    open_storage,
    read_table,
    rebuild_from_ray_logs,
)

# The result of the study this tool grew from, which every sweep is compared against.
REFERENCE = {"model": "deep CNN with batch norm", "test_accuracy": 0.931, "test_loss": 0.278}
RISE_TOLERANCE = 0.005  # validation loss this far above its minimum counts as "turned upward"
NUMERIC_COLUMNS = ("width", "dropout", "lr", "momentum", "weight_decay", "batch_size", "epochs",
                   "seed", "epochs_run", "best_epoch", "best_val_accuracy", "best_val_loss",
                   "final_train_loss", "final_val_loss", "final_val_accuracy", "test_accuracy",
                   "test_loss", "params", "seconds", "images_per_second")
TEXT_COLUMNS = ("variant", "model", "hidden_sizes", "optimizer", "status", "test_confusion",
                "node_id", "error")


@dataclass
class SweepResults:
    """One sweep's results, read and cleaned (inf as NaN), plus notes on what is missing.

    `trials` gains a `config` column: the trial's axis values as a label, seeds pooled.
    """

    uri: str
    name: str
    trials: pd.DataFrame
    epochs: pd.DataFrame
    spec: SweepSpec | None = None
    axes: list[Axis] = field(default_factory=list)  # spec.axes, plus "variant"; never seed
    configs: list[str] = field(default_factory=list)  # config labels in axis order
    missing: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        """The trials column that ranks trials: the best epoch of the spec's metric."""
        loss = self.spec is not None and self.spec.metric.endswith("loss")
        return "best_val_loss" if loss else "best_val_accuracy"

    @property
    def maximize(self) -> bool:
        return self.metric != "best_val_loss"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _read_optional(uri: str, fs: pafs.FileSystem, path: str, filename: str, missing: list[str],
                   consequence: str) -> pd.DataFrame | None:
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        missing.append(f"{filename} is missing: {consequence}.")
        return None
    try:
        return read_table(uri, filename)
    except UserError as exc:
        missing.append(f"{_one_line(exc)} ({consequence}).")
        return None


def load_results(uri: str) -> SweepResults:
    """Read a sweep results directory (`<storage>/<name>`); raise UserError if it is unusable."""
    fs, root = open_storage(uri)
    try:
        kind = fs.get_file_info(root).type
    except OSError as exc:
        raise UserError(f"{uri}: cannot read ({_one_line(exc)}); check the path and "
                        f"credentials") from None
    if kind == pafs.FileType.NotFound:
        raise UserError(f"{uri}: results directory not found; pass the folder a sweep wrote, "
                        f"<storage>/<name> (e.g. results/smoke)")
    if kind != pafs.FileType.Directory:
        raise UserError(f"{uri}: is a file, not a results directory; pass the folder that "
                        f"holds {TRIALS_FILE}")
    missing: list[str] = []
    spec = _read_spec(fs, f"{root}/{SPEC_FILE}", uri, missing)
    rebuilt: tuple[list[dict], list[dict]] | None = None

    def from_ray_logs() -> tuple[list[dict], list[dict]]:
        nonlocal rebuilt
        if rebuilt is None:
            rebuilt = rebuild_from_ray_logs(
                uri, spec.trial_config if spec else _trial_config_without_spec,
                asha=bool(spec and spec.scheduler.type == "asha"))
        return rebuilt

    try:
        trials = read_table(uri, TRIALS_FILE)
    except UserError as exc:
        if not from_ray_logs()[0]:
            raise UserError(_one_line(exc)) from None
        trials = pd.DataFrame(from_ray_logs()[0])
        missing.append(f"{_one_line(exc).split(': ', 1)[-1].split(';')[0].capitalize()}: "
                       f"{TRIALS_FILE} was rebuilt from Ray's own result files of "
                       f"{len(trials)} trial(s).")
    if trials.empty:  # exported before any trial started: a table with no columns
        trials = pd.DataFrame({c: pd.Series(dtype=object) for c in ("trial_id", "status")})
    absent = [c for c in ("trial_id", "status") if c not in trials.columns]
    if absent:
        raise UserError(f"{uri}/{TRIALS_FILE}: not a sweep trials table (no column "
                        f"{', '.join(absent)}); pass a directory written by fmnist-ray sweep")
    lacking = [c for c in (*NUMERIC_COLUMNS, *TEXT_COLUMNS) if c not in trials.columns]
    if lacking and len(trials):
        missing.append(f"{TRIALS_FILE} has no column {', '.join(lacking)}: those figures are "
                       f"left out.")
    epochs = _read_optional(uri, fs, f"{root}/{EPOCHS_FILE}", EPOCHS_FILE, [],
                            "no learning curves, no overfitting over epochs, no cost per epoch")
    if epochs is None:
        if from_ray_logs()[1]:
            epochs = pd.DataFrame(from_ray_logs()[1])
            missing.append(f"{EPOCHS_FILE} is missing or unreadable: rebuilt from Ray's own "
                           f"result files.")
        else:
            missing.append(f"{EPOCHS_FILE} is missing or unreadable: no learning curves, no "
                           f"overfitting over epochs, no cost per epoch.")
    trials = _clean_trials(trials)
    axes = [describe_axis(trials, name, spec) for name in varied_axes(trials, spec)]
    results = SweepResults(uri=uri, name=spec.name if spec else Path(root).name, trials=trials,
                           epochs=_clean_epochs(epochs), spec=spec, axes=axes, missing=missing)
    results.configs = _label_configs(trials, axes)
    results.missing += _gaps(results)
    return results


def _trial_config_without_spec(params: dict) -> TrialConfig:
    """Best effort for a sweep whose spec.yaml is lost: Ray's params plus the defaults."""
    known = {k: v for k, v in params.items() if k in TrialConfig.model_fields}
    variant = params.get("variant") or {}
    known.update({k: v for k, v in variant.items() if k in TrialConfig.model_fields})
    try:
        return TrialConfig(**known)
    except ValueError:
        return TrialConfig()


def _read_spec(fs: pafs.FileSystem, path: str, uri: str, missing: list[str]) -> SweepSpec | None:
    consequence = "the varied axes are guessed from the trials and the scheduler is unknown"
    try:
        with fs.open_input_stream(path) as stream:
            text = stream.read().decode()
    except FileNotFoundError:
        missing.append(f"{SPEC_FILE} is missing: {consequence}.")
        return None
    try:
        return parse_spec(yaml.safe_load(text), f"{uri}/{SPEC_FILE}")
    except (UserError, yaml.YAMLError) as exc:
        missing.append(f"{SPEC_FILE} is not a valid spec ({_one_line(exc)[:200]}): "
                       f"{consequence}.")
        return None


def _clean_trials(trials: pd.DataFrame) -> pd.DataFrame:
    trials = trials.copy()
    for column in NUMERIC_COLUMNS:
        if column not in trials:
            trials[column] = np.nan
        trials[column] = pd.to_numeric(trials[column], errors="coerce").astype(float)
        trials[column] = trials[column].where(np.isfinite(trials[column]))
    for column in TEXT_COLUMNS:
        if column not in trials:
            trials[column] = None
        trials[column] = trials[column].astype(object).where(trials[column].notna(), None)
    # A trial that never had a finite validation epoch reports best epoch 0, accuracy -1.
    unset = ~(trials["best_epoch"] >= 1)
    trials.loc[unset, ["best_epoch", "best_val_accuracy", "best_val_loss"]] = np.nan
    trials["trial_id"] = trials["trial_id"].astype(str)
    trials["status"] = trials["status"].fillna("unknown").astype(str)
    return trials.reset_index(drop=True)


def _clean_epochs(epochs: pd.DataFrame | None) -> pd.DataFrame:
    columns = ["trial_id", *EPOCH_COLUMNS]
    if epochs is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    epochs = epochs.reindex(columns=columns).copy()
    epochs["trial_id"] = epochs["trial_id"].astype(str)
    for column in EPOCH_COLUMNS:
        values = pd.to_numeric(epochs[column], errors="coerce").astype(float)
        epochs[column] = values.where(np.isfinite(values))
    return epochs.sort_values(["trial_id", "epoch"]).reset_index(drop=True)


def varied_axes(trials: pd.DataFrame, spec: SweepSpec | None) -> list[str]:
    """The spec's axes plus `variant`; without a spec, the settings whose values differ.

    Seeds are never an axis: results are pooled over them.
    """
    if spec is not None:
        names = [*spec.axes, *(["variant"] if spec.variants else [])]
        return [a for a in names if a in trials and a != "seed"]
    candidates = ("variant", "model", "hidden_sizes", "width", "dropout", "optimizer", "lr",
                  "momentum", "weight_decay", "batch_size", "epochs", "normalize", "precision")
    return [c for c in candidates if c in trials and trials[c].astype(str).nunique() > 1]


def _gaps(results: SweepResults) -> list[str]:
    """What the results lack: planned trials not exported, unfinished trials, empty histories."""
    notes, trials, spec = [], results.trials, results.spec
    if spec is not None:
        planned = spec.num_samples if spec.search == "optuna" else len(spec.grid_points())
        if len(trials) < planned:
            notes.append(f"The spec plans {planned} trials; {TRIALS_FILE} holds {len(trials)}.")
    unfinished = trials[trials["status"].isin(["running", "pending", "interrupted"])]
    if len(unfinished):
        notes.append(f"{len(unfinished)} trial(s) unfinished (running, pending or interrupted): "
                     f"{', '.join(unfinished['trial_id'])}.")
    if results.epochs.empty:
        return notes
    without = trials[~trials["trial_id"].isin(set(results.epochs["trial_id"]))]
    if len(without):
        listed = ", ".join(f"{t} ({s})" for t, s in zip(without["trial_id"], without["status"],
                                                          strict=True))
        notes.append(f"{len(without)} trial(s) have no epochs recorded: {listed}.")
    return notes


def describe_axis(trials: pd.DataFrame, name: str, spec: SweepSpec | None) -> Axis:
    """How to show one axis: its value labels in natural order, and whether it is continuous."""
    values = trials[name].dropna()
    axis_spec = spec.axes.get(name) if spec else None
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if isinstance(axis_spec, Range):
        continuous = axis_spec.kind in ("uniform", "loguniform") or (
            numeric and values.nunique() > 8)
        log = axis_spec.kind == "loguniform"
    else:  # listed values are categories, however many; unknown axes go by their count
        continuous = numeric and axis_spec is None and values.nunique() > 8
        log = continuous and values.min() > 0 and values.max() / values.min() >= 100
    distinct = values.unique().tolist()
    if spec is not None and name == "variant":
        names = [v.name for v in spec.variants]
        distinct.sort(key=lambda v: names.index(v) if v in names else len(names))
    elif numeric:
        distinct.sort()
    else:
        distinct.sort(key=str)
    return Axis(name, [format_value(v) for v in distinct], bool(continuous), bool(log))


def _label_configs(trials: pd.DataFrame, axes: list[Axis]) -> list[str]:
    """Give each trial a `config` label (its axis values, seed aside); return their order."""
    if not axes:
        trials["config"] = "all trials"
        return ["all trials"] if len(trials) else []
    parts = {a.name: trials[a.name].map(format_value) for a in axes}
    if len(axes) == 1:
        trials["config"] = parts[axes[0].name]
    else:
        trials["config"] = [", ".join(f"{a.name}={parts[a.name][i]}" for a in axes)
                            for i in trials.index]
    ranks = pd.DataFrame({a.name: parts[a.name].map({v: i for i, v in enumerate(a.order)})
                          for a in axes})
    ranks["config"] = trials["config"]
    return ranks.sort_values([a.name for a in axes])["config"].unique().tolist()


def overfitting_by_trial(results: SweepResults) -> pd.DataFrame:
    """Per trial: last-epoch gap (val - train loss), lowest-val-loss epoch, epochs past best.

    Read from the epoch history where there is one, else from the trials' final losses.
    Diverged trials (their losses blew up; the gap means nothing) and trials with no finite
    losses are left out.
    """
    trials, epochs = results.trials, results.epochs
    trials = trials[trials["status"] != "diverged"]
    rows = []
    for _, trial in trials.iterrows():
        history = epochs[epochs["trial_id"] == trial["trial_id"]].dropna(
            subset=["train_loss", "val_loss"])
        if len(history):
            last = history.iloc[-1]
            lowest = history.loc[history["val_loss"].idxmin()]
            gap, last_epoch = last["val_loss"] - last["train_loss"], last["epoch"]
            turn, rise = lowest["epoch"], last["val_loss"] - lowest["val_loss"]
        elif pd.notna(trial["final_val_loss"]) and pd.notna(trial["final_train_loss"]):
            gap = trial["final_val_loss"] - trial["final_train_loss"]
            last_epoch, turn, rise = trial["epochs_run"], np.nan, np.nan
        else:
            continue
        rows.append({"trial_id": trial["trial_id"], "config": trial["config"],
                     "status": trial["status"], "gap": gap,
                     "last_epoch": last_epoch, "best_epoch": trial["best_epoch"],
                     "turn_epoch": turn, "rise": rise,
                     "past_best": last_epoch - trial["best_epoch"]})
    columns = ["trial_id", "config", "status", "gap", "last_epoch", "best_epoch", "turn_epoch",
               "rise", "past_best"]
    return pd.DataFrame(rows, columns=columns)


def config_table(results: SweepResults) -> pd.DataFrame:
    """Per configuration, seeds pooled: trial counts, test metrics and the ranking metric."""
    table = results.trials.groupby("config", sort=False).agg(
        trials=("trial_id", "size"), scored=("test_accuracy", "count"),
        test_accuracy=("test_accuracy", "mean"), test_min=("test_accuracy", "min"),
        test_max=("test_accuracy", "max"), test_loss=("test_loss", "mean"),
        metric=(results.metric, "mean"))
    return table.reindex([c for c in results.configs if c in table.index])


def best_trial(results: SweepResults) -> pd.Series | None:
    """The trial with the best validation metric among those with test results."""
    scored = results.trials.dropna(subset=[results.metric, "test_accuracy"])
    if scored.empty:
        return None
    column = scored[results.metric]
    return scored.loc[column.idxmax() if results.maximize else column.idxmin()]


def _named(results: SweepResults, config: str) -> str:
    return f"{results.axes[0].name}={config}" if len(results.axes) == 1 else config


def _count(n: float, what: str) -> str:
    return f"{n:.0f} {what}" + ("" if n == 1 else "s")


def status_counts(trials: pd.DataFrame) -> str:
    """E.g. `6 trials: 4 completed, 1 early-stopped, 1 diverged, 0 errored`."""
    counts = trials["status"].value_counts()
    parts = [f"{counts.get(s, 0)} {s.replace('_', '-')}"
             for s in ("completed", "early_stopped", "diverged", "errored")]
    parts += [f"{n} {s}" for s, n in counts.items()
              if s not in ("completed", "early_stopped", "diverged", "errored")]
    return f"{_count(len(trials), 'trial')}: {', '.join(parts)}"


def _best_findings(results: SweepResults) -> list[str]:
    configs = config_table(results)
    scored = configs.dropna(subset=["metric", "test_accuracy"])
    if scored.empty:
        return ["No trial has test results yet, so there is no best configuration."]
    best = scored["metric"].idxmax() if results.maximize else scored["metric"].idxmin()
    row = scored.loc[best]
    spread = (f" (min {row.test_min:.4f}, max {row.test_max:.4f} over "
              f"{_count(row.scored, 'trial')})" if row.scored > 1 else "")
    metric = results.metric.replace("best_val_", "best validation ")
    lines = [f"Best configuration (by mean {metric}): {_named(results, best)}: mean test "
             f"accuracy {row.test_accuracy:.4f}{spread}, mean test loss {row.test_loss:.4f}."]
    trial = best_trial(results)
    params = f", {trial['params']:,.0f} parameters" if pd.notna(trial["params"]) else ""
    lines.append(f"Best single trial: {trial['trial_id']} ({_named(results, trial['config'])}, "
                 f"seed {trial['seed']:.0f}): test accuracy {trial['test_accuracy']:.4f}, test "
                 f"loss {trial['test_loss']:.4f}, best epoch {trial['best_epoch']:.0f} of "
                 f"{trial['epochs_run']:.0f}{params}.")
    points = (row.test_accuracy - REFERENCE["test_accuracy"]) * 100
    lines.append(f"Against the reference ({REFERENCE['model']}: test accuracy "
                 f"{REFERENCE['test_accuracy']}, test loss {REFERENCE['test_loss']}): "
                 f"{points:+.1f} points of test accuracy, test loss "
                 f"{row.test_loss - REFERENCE['test_loss']:+.3f}.")
    return lines


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Rank correlation, NaN when either side is constant (no SciPy needed)."""
    rx, ry = x.rank().to_numpy(), y.rank().to_numpy()
    if len(rx) < 3 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _axis_finding(results: SweepResults, axis: Axis) -> str:
    trials = results.trials
    if axis.continuous:
        scored = trials.dropna(subset=[axis.name, "test_accuracy"])
        if len(scored) < 3:
            return f"{axis.name}: fewer than 3 trials with test results; nothing to say yet."
        best = best_trial(results)
        return (f"{axis.name} (sampled, {len(scored)} trials from "
                f"{format_value(scored[axis.name].min())} to "
                f"{format_value(scored[axis.name].max())}): Spearman correlation with test "
                f"accuracy {spearman(scored[axis.name], scored['test_accuracy']):+.2f}; the best "
                f"trial used {format_value(best[axis.name]) if best is not None else 'none'}.")
    labels = trials[axis.name].map(format_value)
    stats = trials.assign(label=labels).groupby("label").agg(
        mean=("test_accuracy", "mean"), scored=("test_accuracy", "count"),
        trials=("trial_id", "size"), diverged=("status", lambda s: int((s == "diverged").sum())))
    stats = stats.reindex([v for v in axis.order if v in stats.index])
    if stats["scored"].sum() == 0:
        return f"{axis.name}: no trial has a test result yet."
    if len(stats) == 1:
        return f"{axis.name}: only one value ({stats.index[0]}) in these results."
    best = stats["mean"].idxmax()
    top = stats.loc[best]
    others = []
    for label, row in stats.drop(best).iterrows():
        points = (row["mean"] - top["mean"]) * 100
        if row["scored"] == 0:
            others.append(f"{label} has no test result")
        elif points <= -0.05:
            others.append(f"{label} lost {-points:.1f} points")
        else:
            others.append(f"{label} within 0.1 points")
    diverged = [f"{label}: {row.diverged:.0f} of {row.trials:.0f} diverged"
                for label, row in stats.iterrows() if row.diverged]
    return (f"{axis.name}: {best} best ({top['mean']:.4f} mean test accuracy over "
            f"{_count(top['scored'], 'trial')}); {', '.join(others)}"
            + (f" ({'; '.join(diverged)})" if diverged else "") + ".")


def _overfitting_findings(results: SweepResults, per_trial: pd.DataFrame) -> list[str]:
    if per_trial.empty:
        return ["Overfitting: no trial has finite training and validation losses to compare."]
    per = per_trial.groupby("config", sort=False).agg(
        gap=("gap", "mean"), rise=("rise", "mean"), turn=("turn_epoch", "mean"),
        last=("last_epoch", "mean"), past=("past_best", "mean"), n=("gap", "size"))
    rising = per[per["rise"] > RISE_TOLERANCE].sort_values("gap", ascending=False)
    if len(rising):
        worst = [f"{_named(results, c)} (gap {r.gap:.3f} at the last epoch; validation loss "
                 f"lowest at epoch {r.turn:.3g}, up {r.rise:.3f} since; last epoch "
                 f"{r.past:.3g} past the best{'; means over seeds' if r.n > 1 else ''})"
                 for c, r in rising.head(3).iterrows()]
        lines = [f"Overfitting: validation loss turned upward in {len(rising)} of "
                 f"{_count(len(per), 'setting')}; the largest gaps (validation minus "
                 f"training loss): {'; '.join(worst)}."]
    else:
        low, high = per["gap"].idxmin(), per["gap"].idxmax()
        when = ("validation loss was still at its lowest (within "
                f"{RISE_TOLERANCE}) at the last epoch in every setting" if per["rise"].notna().all()
                else "without epoch histories, only the final losses can be compared")
        lines = [f"Overfitting: none seen, {when}; the last-epoch gap (validation minus training "
                 f"loss) ranges from {per.loc[low, 'gap']:.3f} ({_named(results, low)}) to "
                 f"{per.loc[high, 'gap']:.3f} ({_named(results, high)})."]
    return lines + _regularizer_findings(results, per_trial)


def _regularizer_findings(results: SweepResults, per_trial: pd.DataFrame) -> list[str]:
    """Did dropout or batch norm (deep_cnn_bn) narrow the gap, where the sweep varies them?"""
    lines = []
    joined = per_trial.merge(results.trials[["trial_id", "dropout", "model"]], on="trial_id")
    by_dropout = joined.dropna(subset=["dropout"]).groupby("dropout")["gap"].mean().sort_index()
    if len(by_dropout) > 1:
        gaps = ", ".join(f"{g:.3f} at dropout {format_value(d)}" for d, g in by_dropout.items())
        low, high = by_dropout.index[0], by_dropout.index[-1]
        change = by_dropout[low] - by_dropout[high]
        verdict = "narrowed it by" if change > 0 else "did not narrow it; it changed by"
        amount = f"{change:.3f}" if change > 0 else f"{-change:+.3f}"
        lines.append(f"Dropout: last-epoch gap {gaps}; dropout {format_value(high)} {verdict} "
                     f"{amount} against {format_value(low)}.")
    by_model = joined.groupby("model")["gap"].mean()
    if "deep_cnn_bn" in by_model and len(by_model) > 1:
        bn = by_model["deep_cnn_bn"]
        versus = ", ".join(f"{'narrower' if bn < g else 'wider'} than {m} ({g:.3f}) by "
                           f"{abs(g - bn):.3f}" for m, g in by_model.drop("deep_cnn_bn").items())
        lines.append(f"Batch norm: deep_cnn_bn's last-epoch gap is {bn:.3f}, {versus}.")
    return lines


def summarize(results: SweepResults) -> list[str]:
    """The written findings at the top of a report, one sentence (or a few) per item."""
    lines = [f"{status_counts(results.trials)}."] + _best_findings(results)
    if len(results.axes) > 1:
        lines.append("Per axis, means pool the seeds and every value of the other axes:")
    lines += [_axis_finding(results, axis) for axis in results.axes]
    lines += _overfitting_findings(results, overfitting_by_trial(results))
    if results.missing:
        lines.append(f"{_count(len(results.missing), 'gap')} in these results: see "
                     f"\"What is missing\" below.")
    return lines


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot write the report ({exc.strerror}); pass --output "
                        f"somewhere writable") from None


def render_sweep(results: SweepResults, index: str | None = None) -> str:
    """The HTML text of one sweep's page; `index` links back to an index page by file name."""
    per_trial = overfitting_by_trial(results)
    return charts.render_page(results, summarize(results), per_trial, best_trial(results),
                              CLASS_NAMES, index=index)


def build_report(result_dirs: list[str], output: Path) -> Path:
    """Write the study report for one or more sweep results directories; return its path.

    One directory: a single self-contained page at `output`. Several: one page per sweep,
    named `<output stem>-<results folder name>.html` beside `output` (with `-2`, `-3`, ... for
    folders of the same name), and an index page at `output` linking them all with each
    sweep's headline numbers. Every directory is read before anything is written, so a bad
    path fails fast with a UserError.
    """
    if not result_dirs:
        raise UserError("no results directory given; pass one or more, e.g. results/smoke")
    output = Path(output)
    if output.is_dir():
        raise UserError(f"{output}: is a directory; pass an .html file path such as "
                        f"{output / 'report.html'}")
    sweeps = [load_results(str(d)) for d in result_dirs]
    if len(sweeps) == 1:
        _write(output, render_sweep(sweeps[0]))
        return output
    pages, used = [], set()
    for sweep in sweeps:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", sweep.uri.rstrip("/").rsplit("/", 1)[-1])
        name, n = f"{output.stem}-{slug or 'sweep'}", 1
        while (candidate := name if n == 1 else f"{name}-{n}") in used:
            n += 1
        used.add(candidate)
        pages.append(output.with_name(f"{candidate}.html"))
        _write(pages[-1], render_sweep(sweep, index=output.name))
    return build_index(sweeps, pages, output)


def build_index(sweeps: list[SweepResults], pages: list[Path], output: Path) -> Path:
    """Write an index page at `output` linking each sweep's page (paths relative to it)."""
    rows = []
    for sweep, page in zip(sweeps, pages, strict=True):
        configs = config_table(sweep).dropna(subset=["metric", "test_accuracy"])
        best = None
        if len(configs):
            best = configs["metric"].idxmax() if sweep.maximize else configs["metric"].idxmin()
        rows.append({"page": page.name, "name": sweep.name, "uri": sweep.uri,
                     "description": sweep.spec.description if sweep.spec else "",
                     "statuses": status_counts(sweep.trials),
                     "best": _named(sweep, best) if best is not None else "none yet",
                     "test_accuracy": configs.loc[best, "test_accuracy"] if best else math.nan,
                     "missing": len(sweep.missing)})
    _write(output, charts.render_index(rows, REFERENCE))
    return output
