"""Typed configs: one trial's training settings, and a sweep spec loaded from YAML.

A spec file becomes one validated `SweepSpec` here; nothing deeper sees a raw dict. Validation
collects every problem and names the file, the key path, the bad value and the fix.
"""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fmnist_ray.errors import UserError

# Names only, so that validating a spec never imports torch: `fmnist_ray.models.MODELS` builds
# these models and `fmnist_ray.train.build_optimizer` these optimizers.
MODELS = ("mlp", "cnn", "deep_cnn_bn", "resnet")
OPTIMIZERS = ("sgd", "sgd_momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrialConfig(_Strict):
    """Everything one training run needs; the same object drives `train` with or without Ray."""

    model: str = "cnn"  # a name from MODELS
    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(default=[512], min_length=1)  # mlp
    width: int = Field(default=32, ge=1)  # base conv channels of cnn / deep_cnn_bn / resnet
    depth: int = Field(default=1, ge=1)  # resnet: residual blocks per stage
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
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=10, ge=1)
    seed: int = Field(default=0, ge=0)
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
        raise ValueError("must be auto, cpu, cuda or cuda:N")


def _one_of(value: str, allowed, what: str) -> str:
    if value in allowed:
        return value
    hint = difflib.get_close_matches(value, list(allowed), n=1)
    suggestion = f"did you mean '{hint[0]}'? " if hint else ""
    raise ValueError(f"unknown {what} '{value}'; {suggestion}choose one of {', '.join(allowed)}")


class Scheduler(_Strict):
    """Early stopping: `none`, or ASHA with its rungs measured in epochs."""

    type: Literal["none", "asha"] = "none"
    max_t: int | None = Field(default=None, ge=1)  # defaults to the trial's epochs
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=3.0, gt=1.0)


class Resources(_Strict):
    """What one trial reserves on a node."""

    cpu: float = Field(default=1.0, gt=0.0)
    gpu: float = Field(default=0.0, ge=0.0)

    @field_validator("gpu")
    @classmethod
    def _fraction_or_whole(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("must be a fraction in (0, 1] or a whole number of GPUs")
        return value


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

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    metric: Literal[METRICS] = "val_accuracy"  # type: ignore[valid-type]
    mode: Literal["max", "min"] | None = None  # default: max for accuracy, min for loss
    trial: TrialConfig = TrialConfig()
    axes: dict[str, list[Any] | Range] = {}
    variants: list[Variant] = []
    search: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = Field(default=1, ge=1)
    seeds: int = Field(default=1, ge=1)  # each configuration repeated with seeds trial.seed + i
    scheduler: Scheduler = Scheduler()
    resources: Resources = Resources()
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    max_failures: int = Field(default=2, ge=0)
    checkpoint_every: int = Field(default=1, ge=1)  # epochs between checkpoints
    # Random / Optuna search: points tried first (axis values; a variant by its name).
    start_with: list[dict[str, Any]] = []
    time_budget_minutes: float | None = Field(default=None, gt=0)  # stop every trial after this

    @property
    def resolved_mode(self) -> str:
        return self.mode or ("max" if self.metric.endswith("accuracy") else "min")

    @property
    def max_t(self) -> int:
        return self.scheduler.max_t or self.trial.epochs

    def trial_config(self, params: dict[str, Any]) -> TrialConfig:
        """The trial config for one point of the search space (as Ray hands it to a trial)."""
        values = self.trial.model_dump()
        variant = params.get("variant")
        if variant:
            values.update({k: v for k, v in variant.items() if k != "name"})
        values.update({k: v for k, v in params.items() if k != "variant"})
        return TrialConfig(**values)

    def start_point(self, point: dict[str, Any]) -> dict[str, Any]:
        """A `start_with` point as search-space values: a variant's name becomes its value."""
        variants = {v.name: v.value for v in self.variants}
        return {k: variants[v] if k == "variant" else v for k, v in point.items()}

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point a grid search runs, seeds and variants included (one entry per trial)."""
        dims: dict[str, list[Any]] = {k: v for k, v in self.axes.items() if isinstance(v, list)}
        if self.variants:
            dims["variant"] = [v.value for v in self.variants]
        if self.seeds > 1:
            dims["seed"] = [self.trial.seed + i for i in range(self.seeds)]
        keys = list(dims)
        combos = itertools.product(*dims.values())
        points = [dict(zip(keys, combo, strict=True)) for combo in combos]
        return points * self.num_samples


# Names people reach for that the spec spells otherwise.
SYNONYMS = {"learning_rate": "lr", "learningrate": "lr", "bs": "batch_size", "batch": "batch_size",
            "n_epochs": "epochs", "num_epochs": "epochs", "optim": "optimizer",
            "architecture": "model", "arch": "model", "wd": "weight_decay",
            "layers": "hidden_sizes", "hidden": "hidden_sizes", "drop": "dropout",
            "samples": "num_samples", "n_samples": "num_samples", "num_seeds": "seeds",
            "scheduler_type": "scheduler", "searcher": "search"}


def _suggest_key(key: str, allowed: list[str], at_top: bool = False,
                 in_trial: bool = False) -> str:
    """`did you mean ...?`, where the key belongs instead, or the keys allowed here."""
    if at_top and key in TrialConfig.model_fields:
        return f"it belongs under trial: (trial: {{{key}: ...}})"
    if in_trial and key in SweepSpec.model_fields:
        return "it belongs at the top level of the spec, not under trial:"
    synonym = SYNONYMS.get(key.lower())
    hint = [synonym] if synonym in allowed else difflib.get_close_matches(key, allowed, n=1,
                                                                           cutoff=0.5)
    return f"did you mean '{hint[0]}'?" if hint else f"allowed keys: {', '.join(allowed)}"


def _model_fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _fields_at(loc: tuple) -> list[str]:
    """The keys allowed at the parent of a pydantic error location, for did-you-mean hints."""
    if len(loc) == 3 and loc[0] == "axes":  # axes.<name>.<kind>: the kinds of a range
        return _model_fields(Range)
    model: type[BaseModel] = SweepSpec
    for part in loc[:-1]:
        annotation = model.model_fields.get(part) if isinstance(part, str) else None
        if annotation is None:
            break
        target = annotation.annotation
        if isinstance(target, type) and issubclass(target, BaseModel):
            model = target
        else:
            return _model_fields(TrialConfig) if part == "variants" else []
    return _model_fields(model)


def _describe(error: dict, prefix: str = "") -> str:
    """One problem as `key.path: message (got value)`, the path under `prefix` if given."""
    loc = tuple(p for p in error["loc"] if p not in ("list[any]", "Range"))
    path = ".".join(str(p) for p in (prefix, *loc) if p != "") or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = _suggest_key(str(loc[-1]), _fields_at(loc), at_top=len(loc) == 1 and not prefix,
                            in_trial=loc[:1] == ("trial",) and len(loc) == 2)
        return f"{path}: unknown key; {hint}"
    if kind == "missing":
        return f"{path}: required key is missing; add it"
    if kind == "string_pattern_mismatch":  # only names have patterns: they become directories
        return (f"{path}: use letters, digits and _ . - only, starting with a letter or digit "
                f"(got {error['input']!r})")
    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    if isinstance(error["input"], dict):  # a check across keys: the message names them
        return f"{path}: {message}" if loc or prefix else message
    return f"{path}: {message} (got {error['input']!r})"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem in a pydantic error, keys shown as `prefix + key` (CLI: `--`)."""
    lines = []
    for error in exc.errors():
        line = _describe(error)
        if prefix and ": " in line and error["loc"]:  # `key: message` -> `--key: message`
            key, message = line.split(": ", 1)
            line = f"{prefix}{key.replace('_', '-')}: {message}"
        lines.append(line)
    return lines


def _semantic_problems(spec: SweepSpec) -> list[str]:
    """Checks that span several keys, or that Ray itself does not make."""
    problems: list[str] = []
    trial_keys = _model_fields(TrialConfig)
    base = spec.trial.model_dump()
    for key, axis in spec.axes.items():
        path = f"axes.{key}"
        found = len(problems)
        if key not in trial_keys:
            problems.append(f"{path}: not a trial setting; {_suggest_key(key, trial_keys)}")
            continue
        if isinstance(axis, list):
            if not axis:
                problems.append(f"{path}: empty grid; list at least one value")
            values = axis
        else:
            if not axis.kind:
                problems.append(f"{path}: give exactly one of choice, uniform, loguniform, randint")
                continue
            if spec.search == "grid" and axis.kind != "choice":
                problems.append(f"{path}: a {axis.kind} range cannot be searched by a grid; "
                                f"set search: random or search: optuna, or list the values")
            values = getattr(axis, axis.kind)
            if axis.kind == "choice" and not values:
                problems.append(f"{path}.choice: empty choice; list at least one value")
            if axis.kind != "choice":
                low, high = values
                if low >= high:
                    problems.append(f"{path}.{axis.kind}: low {low} must be below high {high}")
                if axis.kind == "loguniform" and low <= 0:
                    problems.append(f"{path}.loguniform: a log scale needs low > 0 (got {low})")
        if len(problems) > found:
            continue  # the range itself is wrong; its endpoints would only repeat that
        for value in values:
            try:
                TrialConfig(**{**base, key: value})
            except ValidationError as exc:
                reason = _describe(exc.errors()[0]).split(": ", 1)[1]
                problems.append(f"{path}: value {value!r}: {reason}")
    for i, variant in enumerate(spec.variants):
        for key in variant.settings:
            if key not in trial_keys:
                problems.append(f"variants.{i}.{key}: not a trial setting; "
                                f"{_suggest_key(key, trial_keys)}")
        try:
            known = {k: v for k, v in variant.settings.items() if k in trial_keys}
            TrialConfig(**{**base, **known})
        except ValidationError as exc:
            problems += [_describe(e, f"variants.{i}") for e in exc.errors()]
    devices = [spec.trial.device, *(v.settings.get("device", "") for v in spec.variants)]
    if isinstance(spec.axes.get("device"), list):
        devices += spec.axes["device"]
    if spec.resources.gpu == 0 and any(str(d).startswith("cuda") for d in devices):
        problems.append("resources.gpu: trials ask for device cuda but reserve no GPU; set "
                        "resources.gpu (e.g. 1 or 0.25) or use device: auto")
    names = [v.name for v in spec.variants]
    if len(set(names)) != len(names):
        problems.append("variants: names must be unique")
    if spec.search == "optuna" and spec.seeds > 1:
        problems.append("seeds: Optuna search samples each point once; set seeds: 1 "
                        "or use search: random")
    problems += _start_point_problems(spec)
    if spec.search != "grid" and not spec.axes and not spec.variants:
        problems.append("axes: random/Optuna search needs at least one axis")
    if spec.mode and spec.mode != ("max" if spec.metric.endswith("accuracy") else "min"):
        problems.append(f"mode: '{spec.mode}' would optimise {spec.metric} the wrong way; "
                        f"remove mode or set it to {'max' if spec.mode == 'min' else 'min'}")
    if spec.scheduler.type == "asha":
        if spec.scheduler.grace_period > spec.max_t:
            problems.append(f"scheduler.grace_period: {spec.scheduler.grace_period} exceeds "
                            f"max_t {spec.max_t}; lower it")
        if spec.max_t > spec.trial.epochs:
            problems.append(f"scheduler.max_t: {spec.max_t} exceeds trial.epochs "
                            f"{spec.trial.epochs}; lower max_t or raise epochs")
    return problems


def _start_point_problems(spec: SweepSpec) -> list[str]:
    if not spec.start_with:
        return []
    if spec.search != "optuna":
        return ["start_with: only Optuna search takes start points; set search: optuna, "
                "or remove start_with"]
    problems = []
    if len(spec.start_with) > spec.num_samples:
        problems.append(f"start_with: {len(spec.start_with)} start points but num_samples is "
                        f"{spec.num_samples}; raise num_samples or drop points")
    names = [v.name for v in spec.variants]
    searched = [*spec.axes, *(["variant"] if spec.variants else [])]
    for i, point in enumerate(spec.start_with):
        found = len(problems)
        missing = [key for key in searched if key not in point]
        if missing:
            problems.append(f"start_with.{i}: sets no {', '.join(missing)}; a start point "
                            f"gives every searched axis a value")
        for key, value in point.items():
            path = f"start_with.{i}.{key}"
            if key not in searched:
                problems.append(f"{path}: not an axis of this sweep; "
                                f"{_suggest_key(key, searched)}")
            elif key == "variant" and value not in names:
                problems.append(f"{path}: no variant named {value!r}; "
                                f"{_suggest_key(str(value), names)}")
            elif key != "variant":
                problems += _point_value_problems(spec, path, key, value)
        if len(problems) == found:  # each value fits its axis: do they make a valid trial?
            try:
                spec.trial_config(spec.start_point(point))
            except ValidationError as exc:
                problems += [_describe(e, f"start_with.{i}") for e in exc.errors()]
    return problems


def _point_value_problems(spec: SweepSpec, path: str, key: str, value: Any) -> list[str]:
    axis = spec.axes[key]
    if isinstance(axis, list) or axis.kind == "choice":
        allowed = axis if isinstance(axis, list) else axis.choice
        return [] if value in allowed else [f"{path}: {value!r} is not one of the axis's values "
                                            f"{allowed}; pick one of them"]
    low, high = getattr(axis, axis.kind)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        return [f"{path}: {value!r} is outside the axis's range [{low}, {high}]; pick a value "
                f"inside it"]
    return []


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `KEY=VALUE` overrides (dotted keys, YAML values) to a raw spec dict."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set trial.epochs=2")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return raw


def parse_spec(raw: Any, source: str) -> SweepSpec:
    """Validate a raw spec dict; raise one UserError listing every problem, one per line."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a sweep spec must be a YAML mapping of keys (name, trial, "
                        f"axes, ...), got {type(raw).__name__}")
    try:
        spec = SweepSpec(**raw)
    except ValidationError as exc:
        errors = exc.errors()
        # `axes.lr: {logunif: ...}` fails as a list too: only the range's own problem counts.
        ranges = {tuple(e["loc"][:2]) for e in errors if "Range" in e["loc"]}
        problems = [_describe(e) for e in errors
                    if not (e["type"] == "list_type" and tuple(e["loc"][:2]) in ranges)]
    else:
        problems = _semantic_problems(spec)
    if problems:
        raise UserError("\n".join(f"{source}: {p}" for p in problems))
    return spec


def load_spec(path: Path | str, overrides: list[str] | None = None) -> SweepSpec:
    """Read and validate a sweep spec file, with optional `KEY=VALUE` overrides."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: spec file not found; check the path "
                        f"(shipped specs are in sweeps/)") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory; pass a .yaml spec file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: {where}YAML syntax error: {problem}; fix the indentation or "
                        f"quoting there") from None
    if overrides:
        raw = apply_overrides(raw if isinstance(raw, dict) else {}, overrides)
        changed = [o for o in overrides if not o.startswith(("name=", "description="))]
        if changed and isinstance(raw.get("description"), str):
            # The description was written for the file as it is: say what --set changed.
            raw["description"] += f" (changed with --set {', '.join(changed)})"
    return parse_spec(raw, str(path))


def spec_to_yaml(spec: SweepSpec) -> str:
    """The spec as YAML, stored beside the results so a resume can compare search spaces."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
