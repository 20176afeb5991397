"""Every problem in a sweep spec, one line each: `key.path: what is wrong; the fix`.

Pydantic checks each value; this module words its errors for people and adds the checks that
span several keys: every trial the spec can produce is validated whole, and contradictions
(an axis and `seeds` both setting the seed, scheduler options without a scheduler, ...) are
refused rather than silently resolved.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from fmnist_ray.config import (
    MAX_TRIALS,
    TRAIN_IMAGES,
    Axis,
    Range,
    SweepSpec,
    TrialConfig,
    grid_values,
    listed_values,
)
from fmnist_ray.spec.schedulers import objective_problems, scheduler_problems

MAX_SHOWN = 60  # characters of a value shown in a message
MAX_COMBINATIONS = 20_000  # trial combinations validated one by one; more are sampled at corners


def shown(value: Any) -> str:
    """A value for a message: its repr, cut to MAX_SHOWN characters (never a whole file)."""
    text = repr(value) if not isinstance(value, dict | list) or len(value) < 50 else \
        f"<{type(value).__name__} of {len(value)} items>"
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


# The fix for pydantic's own checks, by error type.
_FIXES = {
    "greater_than": "; raise it", "greater_than_equal": "; raise it",
    "less_than": "; lower it", "less_than_equal": "; lower it",
    "finite_number": "; give a finite number", "too_short": "; add at least one",
    "literal_error": "; use one of those", "string_too_long": "; shorten it",
    "int_type": "; write a whole number", "int_parsing": "; write a whole number",
    "int_from_float": "; write a whole number", "float_type": "; write a number",
    "float_parsing": "; write a number such as 0.001", "bool_type": "; write true or false",
    "bool_parsing": "; write true or false", "list_type": "; write a list such as [1, 2]",
    "string_type": "; write a name", "dict_type": "; write a mapping of keys",
    "model_type": "; write a mapping of keys", "tuple_type": "; write [low, high]",
    "too_long": "; give exactly two numbers, [low, high]",
}


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
        return f"it belongs under trial: move it there (trial: {{{key}: ...}})"
    if in_trial and key in SweepSpec.model_fields:
        return "it belongs at the top level of the spec: move it out of trial:"
    hint = closest(key, allowed)
    if hint:
        return f"did you mean '{hint}'?"
    listed = ", ".join(allowed[:8]) + (f" and {len(allowed) - 8} more" if len(allowed) > 8
                                       else "")
    return f"remove it or fix its spelling (keys here: {listed})"


def closest(value: str, allowed: list[str]) -> str | None:
    """The allowed name a user most likely meant: a known synonym, the same name in another
    case, a name it starts with, or the closest spelling."""
    lowered = value.lower()
    synonym = SYNONYMS.get(lowered)
    if synonym in allowed:
        return synonym
    for name in allowed:
        if name.lower() == lowered:
            return name
    prefixed = [name for name in allowed if lowered.startswith(name.lower()) and len(name) > 2]
    if prefixed:
        return max(prefixed, key=len)
    hint = difflib.get_close_matches(lowered, [a.lower() for a in allowed], n=1, cutoff=0.5)
    return next((a for a in allowed if a.lower() == hint[0]), None) if hint else None


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


def describe(error: dict, prefix: str = "") -> str:
    """One problem as `key.path: message (got value)`, the path under `prefix` if given."""
    loc = tuple(p for p in error["loc"] if p not in ("list[any]", "Range"))
    path = ".".join(_cut(str(p)) for p in (prefix, *loc) if p != "") or "(top level)"
    kind = error["type"]
    value = error["input"]
    if "Range" in error["loc"] and len(error["loc"]) == 3:  # axes.<key> is neither list nor range
        return (f"{path}: give a list of values (e.g. [0.1, 0.01]) or a range (e.g. "
                f"{{loguniform: [0.0001, 0.1]}}){_got(value)}")
    if kind == "missing" and loc and isinstance(loc[-1], int):  # a tuple given too few items
        return f"{'.'.join(path.split('.')[:-1])}: give two numbers, [low, high]"
    if value is None and kind != "missing":
        return f"{path}: is empty (null); give it a value or remove the key"
    if kind in ("model_type", "dict_type") and not isinstance(value, dict):
        return f"{path}: must be a mapping of keys; {_mapping_hint(loc, value)}"
    if kind == "extra_forbidden":
        hint = _suggest_key(str(loc[-1]), _fields_at(loc), at_top=len(loc) == 1 and not prefix,
                            in_trial=loc[:1] == ("trial",) and len(loc) == 2)
        return f"{path}: unknown key; {hint}"
    if kind == "missing":
        return f"{path}: required key is missing; add it"
    if kind == "string_pattern_mismatch":  # only names have patterns: they become directories
        return (f"{path}: use letters, digits and _ . - only, starting with a letter or digit "
                f"(got {shown(error['input'])})")
    message = error["msg"].removeprefix("Value error, ")
    message = message.replace("Input should be", "must be").replace("should have", "must have")
    if kind == "less_than_equal" and loc[-1:] == ("batch_size",):
        message += f" (the training set holds {TRAIN_IMAGES:,} images)"
    if kind == "value_error" and isinstance(value, dict):  # a check across keys names them
        return f"{path}: {message}" if loc or prefix else message
    fix = _FIXES.get(kind, "")
    if kind == "literal_error" and isinstance(value, str):
        hint = closest(value, re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected", "")))
        fix = f"; did you mean '{hint}'?" if hint else fix
    return f"{path}: {message}{_got(value)}{fix}"


def _got(value: Any) -> str:
    return "" if value is None else f" (got {shown(value)})"


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


# What a scalar given for a section most likely meant.
_SECTION_KEYS = {"scheduler": "type", "resources": "cpu", "trial": "model"}


def _mapping_hint(loc: tuple, value: Any) -> str:
    if loc[:1] == ("variants",):
        return f"write each variant as {{name: {_cut(str(value), 20)}, model: ...}}"
    key = _SECTION_KEYS.get(str(loc[-1])) if loc else None
    if key and isinstance(value, str | int | float):
        return f"write {loc[-1]}: {{{key}: {_cut(str(value), 20)}}}"
    return "write it as key: value pairs under this key"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem in a pydantic error, keys shown as `prefix + key` (CLI: `--`)."""
    lines = []
    for error in exc.errors():
        line = describe(error)
        if prefix and ": " in line and error["loc"]:  # `key: message` -> `--key: message`
            key, message = line.split(": ", 1)
            line = f"{prefix}{key.replace('_', '-')}: {message}"
        elif prefix and line.split(" ", 1)[0] in TrialConfig.model_fields:  # a cross-key check
            line = f"{prefix}{line.split(' ', 1)[0].replace('_', '-')}: {line}"
        lines.append(line)
    return lines


def semantic_problems(spec: SweepSpec) -> list[str]:
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
        grid = grid_values(axis)
        if grid is not None:
            if not grid:
                problems.append(f"{path}: empty grid; list at least one value")
            values = grid
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
                    problems.append(f"{path}.{axis.kind}: low {low} must be below high {high}; "
                                    f"swap them")
                if axis.kind == "loguniform" and low <= 0:
                    problems.append(f"{path}.loguniform: a log scale needs low > 0 (got {low})")
        if len(problems) > found:
            continue  # the range itself is wrong; its endpoints would only repeat that
        if listed_values(axis) is not None:
            repeated = _repeated(values)
            if repeated:
                where = path if grid is not None else f"{path}.choice"
                problems.append(f"{where}: {shown(repeated)} is listed twice; remove the "
                                f"duplicate (seeds: N repeats every configuration)")
        for value in values:
            try:
                TrialConfig(**{**base, key: value})
            except ValidationError as exc:
                reason = describe(exc.errors()[0])
                reason = reason.partition(": ")[2] if exc.errors()[0]["loc"] else reason
                problems.append(f"{path}: value {shown(value)}: {reason}")
    for i, variant in enumerate(spec.variants):
        for key in variant.settings:
            if key not in trial_keys:
                problems.append(f"variants.{i}.{key}: not a trial setting; "
                                f"{_suggest_key(key, trial_keys)}")
        try:
            known = {k: v for k, v in variant.settings.items() if k in trial_keys}
            TrialConfig(**{**base, **known})
        except ValidationError as exc:
            problems += [describe(e, f"variants.{i}") for e in exc.errors()]
    devices = [spec.trial.device, *(v.settings.get("device", "") for v in spec.variants)]
    devices += grid_values(spec.axes.get("device", [])) or []
    if spec.resources.gpu == 0 and any(str(d).startswith("cuda") for d in devices):
        problems.append("resources.gpu: trials ask for device cuda but reserve no GPU; set "
                        "resources.gpu (e.g. 1 or 0.25) or use device: auto")
    names = [v.name for v in spec.variants]
    if len(set(names)) != len(names):
        problems.append(f"variants: the name {shown(_repeated(names))} is used twice; rename one")
    if spec.search == "optuna" and spec.seeds > 1:
        problems.append("seeds: Optuna search samples each point once; set seeds: 1 "
                        "or use search: random")
    problems += _start_point_problems(spec)
    if spec.search != "grid" and not spec.axes and not spec.variants:
        problems.append(f"axes: {spec.search} search needs at least one axis; add one under "
                        f"axes: (e.g. lr: {{loguniform: [0.0001, 0.1]}})")
    if spec.mode and spec.mode != spec.natural_mode:
        problems.append(f"mode: '{spec.mode}' would optimise {spec.metric} the wrong way; "
                        f"remove mode or set it to {'max' if spec.mode == 'min' else 'min'}")
    problems += scheduler_problems(spec) + objective_problems(spec)
    problems += _contradictions(spec)
    if not problems:
        problems += _count_problems(spec)
    if not problems:
        problems += _combination_problems(spec)
    return problems


def _repeated(values: list[Any]) -> Any:
    """The first value listed twice, if any (lists and dicts compared by value)."""
    seen: list[Any] = []
    for value in values:
        if value in seen:
            return value
        seen.append(value)
    return None


def _contradictions(spec: SweepSpec) -> list[str]:
    """Keys that would each be silently dropped or ignored by another."""
    problems = []
    if "seed" in spec.axes and spec.seeds > 1:
        problems.append(f"axes.seed: seeds: {spec.seeds} also sets the seed (trial.seed + 0.."
                        f"{spec.seeds - 1}); remove axes.seed or set seeds: 1")
    for i, variant in enumerate(spec.variants):
        for key in variant.settings:
            if key in spec.axes:
                problems.append(f"variants.{i}.{key}: also an axis (axes.{key}), which would "
                                f"override it; remove it from the variant or drop the axis")
    if spec.confirm_seeds and not spec.is_search:
        problems.append("confirm_seeds: only a search (random or optuna search, ASHA, or a "
                        "time budget) confirms its choice with fresh seeds; a grid runs every "
                        "configuration fully: set seeds instead, or remove confirm_seeds")
    if spec.search == "random" and spec.axes and not spec.sampled_keys:
        problems.append("search: random has nothing to sample: every axis is a list, which "
                        "random search runs as a grid; use search: grid, or give an axis a "
                        "range (e.g. lr: {loguniform: [0.0001, 0.1]})")
    return problems


def _count_problems(spec: SweepSpec) -> list[str]:
    count = spec.trial_count()
    if count <= MAX_TRIALS:
        return []
    dims = {k: len(v) for k, v in spec.grid_dimensions().items()}
    if spec.num_samples > 1:
        dims["num_samples"] = spec.num_samples
    factors = " x ".join(f"{n:,} {key}" for key, n in dims.items())
    key = max(dims, key=dims.get) if dims else "num_samples"
    key = {"variant": "variants", "seed": "seeds"}.get(key, key)
    key = key if key in ("variants", "seeds", "num_samples") else f"axes.{key}"
    return [f"{key}: the spec expands to {count:,} trials ({factors}), more than the "
            f"{MAX_TRIALS:,} a sweep may run; lower it or split the study"]


def _search_values(axis: Axis) -> list[Any]:
    """The values of an axis worth validating: all of a grid or choice, a range's ends."""
    listed = listed_values(axis)
    if listed is not None:
        return listed
    low, high = getattr(axis, axis.kind)
    if axis.kind == "randint":
        return [low, high]
    return [low, math.nextafter(high, low)]  # Tune samples [low, high)


def _combination_problems(spec: SweepSpec) -> list[str]:
    """Every grid combination (and each range's ends) validated as a whole trial, so a value
    valid alone but not beside another (epochs below warmup_epochs) is caught before a run."""
    dims = {key: _search_values(axis) for key, axis in spec.axes.items()}
    if spec.variants:
        dims["variant"] = spec.variants
    if not dims:
        return []
    base = spec.trial.model_dump()
    problems: dict[str, str] = {}  # one line per distinct reason
    for combo in itertools.islice(itertools.product(*dims.values()), MAX_COMBINATIONS):
        point = dict(zip(dims, combo, strict=True))
        values = dict(base)
        if "variant" in point:
            values.update(point["variant"].settings)
        values.update({k: v for k, v in point.items() if k != "variant"})
        try:
            TrialConfig(**values)
        except ValidationError as exc:
            reason = describe(exc.errors()[0])
            if reason not in problems:
                named = ", ".join(f"variant {v.name}" if k == "variant" else f"{k}={shown(v)}"
                                  for k, v in point.items())
                problems[reason] = f"axes: the trial with {named} is invalid: {reason}"
        if len(problems) >= 3:
            break
    return list(problems.values())


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
    searched = spec.searched_keys
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
                hint = closest(str(value), names)
                problems.append(f"{path}: no variant named {shown(value)}; " + (
                    f"did you mean '{hint}'?" if hint else f"choose one of {', '.join(names)}"))
            elif key != "variant":
                problems += _point_value_problems(spec, path, key, value)
        if len(problems) == found:  # each value fits its axis: do they make a valid trial?
            try:
                spec.trial_config(spec.start_point(point))
            except ValidationError as exc:
                problems += [describe(e, f"start_with.{i}") for e in exc.errors()]
    return problems


def _point_value_problems(spec: SweepSpec, path: str, key: str, value: Any) -> list[str]:
    axis = spec.axes[key]
    allowed = listed_values(axis)
    if allowed is not None:
        return [] if value in allowed else [f"{path}: {shown(value)} is not one of the axis's "
                                            f"values {shown(allowed)}; pick one of them"]
    low, high = getattr(axis, axis.kind)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"{path}: {shown(value)} is not a number; give a number inside the axis's "
                f"range [{low}, {high}], e.g. {low}"]
    if not low <= value <= high:
        return [f"{path}: {shown(value)} is outside the axis's range [{low}, {high}]; pick a "
                f"value inside it"]
    return []


