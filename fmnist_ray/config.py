"""Typed configs: one trial's training settings, and a sweep spec.

A spec file becomes one validated `SweepSpec` at the boundary (`spec_file`); nothing deeper
sees a raw dict. The checks that span several keys are in `spec_problems`.
"""

from __future__ import annotations

import difflib
import itertools
import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Names only, so that validating a spec never imports torch: `training.models.MODELS` builds
# these models and `fmnist_ray.training.loop.build_optimizer` these optimizers.
MODELS = ("mlp", "cnn", "deep_cnn_bn", "resnet")
OPTIMIZERS = ("sgd", "sgd_momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
TRAIN_IMAGES = 54_000  # Fashion-MNIST's 60,000 training images less the 6,000 held out
MAX_TRIALS = 10_000  # a spec that expands to more is a mistake (seeds: 1000000000)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info) -> Any:
        """YAML's `yes`/`true` are booleans, which pydantic would take as 1 for a number."""
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and annotation in (int, float, int | None, float | None):
            raise ValueError(f"must be a number, not {str(value).lower()}; write a number")
        return value


class TrialConfig(_Strict):
    """Everything one training run needs; the same object drives `train` with or without Ray."""

    model: str = "cnn"  # a name from MODELS
    hidden_sizes: list[Annotated[int, Field(ge=1, le=100_000)]] = Field(  # mlp
        default=[512], min_length=1, max_length=64)
    width: int = Field(default=32, ge=1, le=4096)  # base conv channels of the CNNs / resnet
    depth: int = Field(default=1, ge=1, le=100)  # resnet: residual blocks per stage
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    optimizer: str = "adam"
    lr: float = Field(default=1e-3, gt=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)  # sgd_momentum, nesterov, rmsprop
    weight_decay: float = Field(default=0.0, ge=0.0)
    schedule: Literal["constant", "cosine", "onecycle"] = "constant"  # learning rate over steps
    warmup_epochs: float = Field(default=0.0, ge=0.0)  # linear warm-up from 0 (constant, cosine)
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    ema: float = Field(default=0.0, ge=0.0, lt=1.0)  # decay of a weight average evaluated; 0: off
    augment_crop: int = Field(default=0, ge=0, le=14)  # random 28 px crop after padding this much
    augment_flip: bool = False  # random horizontal flip
    augment_erasing: float = Field(default=0.0, ge=0.0, le=1.0)  # chance of erasing a rectangle
    batch_size: int = Field(default=64, ge=1, le=TRAIN_IMAGES)
    epochs: int = Field(default=10, ge=1, le=10_000)
    seed: int = Field(default=0, ge=0, lt=2**32)
    normalize: bool = True  # standardize pixels with the training mean/std
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the hardware is fast
    # auto: channels_last for the convolutional models (faster on GPUs and CPUs), else contiguous
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"

    @model_validator(mode="after")
    def _warmup_within_epochs(self) -> TrialConfig:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs {self.warmup_epochs:g} must be below epochs "
                             f"{self.epochs}; lower it")
        return self

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return _one_of(value, MODELS, "model")

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        return _one_of(value, OPTIMIZERS, "optimizer")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("must be auto, cpu, cuda or cuda:N; use cuda (or cuda:N) for a GPU")


def _one_of(value: str, allowed, what: str) -> str:
    if value in allowed:
        return value
    lowered = [name.lower() for name in allowed]
    hint = difflib.get_close_matches(value.lower(), lowered, n=1)
    suggestion = f"did you mean '{allowed[lowered.index(hint[0])]}'? " if hint else ""
    shown = value if len(value) <= 40 else value[:37] + "..."
    raise ValueError(f"unknown {what} '{shown}'; {suggestion}choose one of {', '.join(allowed)}")


# Settings population based training may change while a trial trains: those a checkpoint's
# weights and optimizer state carry over unchanged (not the architecture, optimizer or length).
MUTABLE = ("lr", "weight_decay", "momentum", "dropout", "label_smoothing", "batch_size",
           "augment_crop", "augment_erasing")
# The search-space key of a confirmation that replays a PBT trial's schedule of settings.
SCHEDULE_KEY = "pbt_schedule"
# What a multi-objective search can optimise, and the trials column each one reads: the best
# validation epoch's score, the trial's training + evaluation seconds, its parameter count.
OBJECTIVES = {"val_accuracy": "best_val_accuracy", "val_loss": "best_val_loss",
              "seconds": "seconds", "params": "params"}


class Scheduler(_Strict):
    """How trials are stopped or changed while they train: `none`; ASHA or HyperBand, whose
    rungs are measured in epochs; or PBT (population based training), which every
    `perturbation_interval` epochs gives the worst `quantile` of trials the weights of one of
    the best and changes its `mutate` settings within their axes."""

    type: Literal["none", "asha", "hyperband", "pbt"] = "none"
    max_t: int | None = Field(default=None, ge=1)  # defaults to the trial's epochs
    grace_period: int = Field(default=1, ge=1)  # asha
    reduction_factor: float = Field(default=3.0, gt=1.0)  # asha, hyperband
    perturbation_interval: int = Field(default=2, ge=1)  # pbt: epochs between changes
    mutate: list[str] = []  # pbt: the axes it may change (see MUTABLE)
    quantile: float = Field(default=0.25, gt=0.0, le=0.5)  # pbt: the share replaced each time

    # The options each type reads (a value given for another type is refused).
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "none": (), "asha": ("max_t", "grace_period", "reduction_factor"),
        "hyperband": ("max_t", "reduction_factor"),
        "pbt": ("perturbation_interval", "mutate", "quantile")}

    @property
    def label(self) -> str:
        """The scheduler's name as the pages write it."""
        return {"asha": "ASHA", "hyperband": "HyperBand", "pbt": "PBT"}.get(self.type, "none")

    @property
    def stops_early(self) -> bool:
        """Whether trials can end before their last epoch (ASHA, HyperBand)."""
        return self.type in ("asha", "hyperband")


class Resources(_Strict):
    """What one trial reserves on a node."""

    cpu: float = Field(default=1.0, gt=0.0)
    gpu: float = Field(default=0.0, ge=0.0)

    @field_validator("gpu")
    @classmethod
    def _fraction_or_whole(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("must be a fraction in (0, 1] or a whole number of GPUs; use e.g. "
                             "0.5 or 2")
        return value


class Analysis(_Strict):
    """How the report decides: differences smaller than `margin` do not matter to the study."""

    margin: float = Field(default=0.5, gt=0.0, le=10.0)  # accuracy points: equivalence bound
    # A train-validation loss gap within this of zero counts as closed ("cures overfitting").
    gap_margin: float = Field(default=0.02, gt=0.0, le=1.0)
    # How many analyses the seeds were added for (`extend --until-decided` sets it): every
    # test runs at 5% / looks, so the error rate holds over all of them.
    looks: int = Field(default=1, ge=1, le=100)


class Range(_Strict):
    """A search-space dimension for random / Optuna search; exactly one kind is given."""

    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None  # inclusive bounds

    @property
    def kind(self) -> str:
        kinds = [k for k in ("choice", "uniform", "loguniform", "randint")
                 if getattr(self, k) is not None]
        return kinds[0] if len(kinds) == 1 else ""


Axis = list[Any] | Range  # a list of values (a grid) or a range a search samples


def grid_values(axis: Axis) -> list[Any] | None:
    """An axis's values when it lists them (a grid); None when it is a range to sample."""
    return axis if isinstance(axis, list) else None


def listed_values(axis: Axis) -> list[Any] | None:
    """The values an axis picks from: a grid's, or a choice range's; None for a numeric range."""
    grid = grid_values(axis)
    if grid is not None:
        return grid
    return axis.choice if axis.kind == "choice" else None


class Variant(BaseModel):
    """A named bundle of trial settings varied together (e.g. one architecture)."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def value(self) -> dict[str, Any]:
        """The variant as a search-space value: its name and settings in one dict."""
        return {"name": self.name, **self.settings}


class SweepSpec(_Strict):
    """A validated sweep: a base trial, the axes to vary, and how Ray Tune should search them."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    metric: Literal[METRICS] = "val_accuracy"  # type: ignore[valid-type]
    mode: Literal["max", "min"] | None = None  # default: max for accuracy, min for loss
    trial: TrialConfig = TrialConfig()
    axes: dict[str, Axis] = {}
    variants: list[Variant] = []
    search: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = Field(default=1, ge=1, le=MAX_TRIALS)
    seeds: int = Field(default=1, ge=1, le=MAX_TRIALS)  # each configuration: trial.seed + i
    scheduler: Scheduler = Scheduler()
    resources: Resources = Resources()
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    max_failures: int = Field(default=2, ge=0)
    checkpoint_every: int = Field(default=1, ge=1)  # epochs between checkpoints
    # Random / Optuna search: points tried first (axis values; a variant by its name).
    start_with: list[dict[str, Any]] = []
    time_budget_minutes: float | None = Field(default=None, gt=0)  # stop every trial after this
    # A search's choice, trained again after it with this many fresh seeds at full length:
    # the result the report gives (the search's own figure for its winner is optimistic).
    confirm_seeds: int = Field(default=0, ge=0, le=20)
    # Several objectives searched together (`search: optuna`), e.g. {val_accuracy: max,
    # seconds: min}: the report draws their Pareto front (see OBJECTIVES).
    objectives: dict[str, Literal["max", "min"]] = {}
    # Which point of the front is chosen: the most accurate one within these limits on the
    # other objectives (e.g. {seconds: 120}); without limits, the most accurate.
    choose_within: dict[str, float] = {}
    analysis: Analysis = Analysis()

    @property
    def is_search(self) -> bool:
        """Trials are sampled points, stopped early or changed as they train: their winner is
        judged at common rungs and is confirmed with fresh seeds when `confirm_seeds` asks."""
        return (self.search != "grid" or self.scheduler.type != "none"
                or self.time_budget_minutes is not None)

    @property
    def is_population(self) -> bool:
        """Population based training: a trial's settings change as it trains, so it is a
        schedule of settings, never one configuration."""
        return self.scheduler.type == "pbt"

    @property
    def resolved_mode(self) -> str:
        return self.mode or self.natural_mode

    @property
    def natural_mode(self) -> str:
        """The way the metric improves: up for an accuracy, down for a loss."""
        return "max" if self.metric.endswith("accuracy") else "min"

    @property
    def best_column(self) -> str:
        """The trials column that ranks trials by the metric: their best epoch's score."""
        return "best_val_loss" if self.metric.endswith("loss") else "best_val_accuracy"

    @property
    def max_t(self) -> int:
        return self.scheduler.max_t or self.trial.epochs

    def trial_config(self, params: dict[str, Any]) -> TrialConfig:
        """The trial config for one point of the search space (as Ray hands it to a trial)."""
        values = self.trial.model_dump()
        variant = params.get("variant")
        if variant:
            values.update({k: v for k, v in variant.items() if k != "name"})
        values.update({k: v for k, v in params.items() if k not in ("variant", SCHEDULE_KEY)})
        return TrialConfig(**values)

    def start_point(self, point: dict[str, Any]) -> dict[str, Any]:
        """A `start_with` point as search-space values: a variant's name becomes its value."""
        variants = {v.name: v.value for v in self.variants}
        return {k: variants[v] if k == "variant" else v for k, v in point.items()}

    @property
    def searched_keys(self) -> list[str]:
        """The trial settings the search varies: the axes, then `variant` if there are any."""
        return [*self.axes, *(["variant"] if self.variants else [])]

    @property
    def sampled_keys(self) -> list[str]:
        """The axes given as ranges: a search samples them; they are no grid of fixed values."""
        return [key for key, axis in self.axes.items() if grid_values(axis) is None]

    @property
    def varied_keys(self) -> list[str]:
        """What tells the trials apart: the searched keys, and `seed` when there are several."""
        return [*self.searched_keys, *(["seed"] if self.seeds > 1 else [])]

    @property
    def seed_values(self) -> list[int]:
        """The seeds each configuration runs with: trial.seed, trial.seed + 1, ..."""
        return [self.trial.seed + i for i in range(self.seeds)]

    def grid_dimensions(self) -> dict[str, list[Any]]:
        """The dimensions crossed into a grid: list axes, variants, and seeds."""
        dims: dict[str, list[Any]] = {key: grid for key, axis in self.axes.items()
                                      if (grid := grid_values(axis)) is not None}
        if self.variants:
            dims["variant"] = [v.value for v in self.variants]
        if self.seeds > 1:
            dims["seed"] = self.seed_values
        return dims

    def trial_count(self) -> int:
        """How many trials the sweep runs, computed without expanding them."""
        if self.search == "optuna":
            return self.num_samples
        return math.prod(len(v) for v in self.grid_dimensions().values()) * self.num_samples

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point a grid search runs, seeds and variants included (one entry per trial)."""
        dims = self.grid_dimensions()
        keys = list(dims)
        combos = itertools.product(*dims.values())
        points = [dict(zip(keys, combo, strict=True)) for combo in combos]
        return points * self.num_samples


