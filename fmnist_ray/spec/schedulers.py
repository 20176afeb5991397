"""The checks of a spec's scheduler (ASHA, HyperBand, PBT) and of a multi-objective search:
each option read by the type given, and what each needs of the rest of the spec."""

from __future__ import annotations

from fmnist_ray.config import MUTABLE, OBJECTIVES, Scheduler, SweepSpec


def scheduler_problems(spec: SweepSpec) -> list[str]:
    """What is wrong with `scheduler:`, one line each."""
    options, kind = spec.scheduler, spec.scheduler.type
    defaults = Scheduler()
    read = Scheduler.OPTIONS[kind]
    given = [k for field_options in Scheduler.OPTIONS.values() for k in field_options
             if getattr(options, k) != getattr(defaults, k) and k not in read]
    problems = []
    if given:
        users = [t for t, keys in Scheduler.OPTIONS.items() if given[0] in keys]
        problems.append(f"scheduler.{given[0]}: an option of {' and '.join(users)}, which "
                        f"{kind} does not read; set scheduler.type: {users[0]}, or remove "
                        f"{', '.join(dict.fromkeys(given))}")
    if options.stops_early:
        if kind == "asha" and options.grace_period > spec.max_t:
            problems.append(f"scheduler.grace_period: {options.grace_period} exceeds max_t "
                            f"{spec.max_t}; lower it")
        if spec.max_t > spec.trial.epochs:
            problems.append(f"scheduler.max_t: {spec.max_t} exceeds trial.epochs "
                            f"{spec.trial.epochs}; lower max_t or raise epochs")
    if kind in ("hyperband", "pbt") and spec.checkpoint_every != 1:
        problems.append(f"checkpoint_every: {kind} pauses trials and continues them (PBT from "
                        f"another trial's checkpoint) at any epoch; set checkpoint_every: 1")
    if kind == "pbt":
        problems += _population_problems(spec)
    return problems


def _population_problems(spec: SweepSpec) -> list[str]:
    options = spec.scheduler
    if not options.mutate:
        return ["scheduler.mutate: PBT changes settings as trials train; list the axes it may "
                f"change, e.g. mutate: [lr] (any of {', '.join(MUTABLE)})"]
    problems = []
    for i, key in enumerate(options.mutate):
        if key not in MUTABLE:
            problems.append(f"scheduler.mutate.{i}: {key} cannot change while a model trains; "
                            f"choose from {', '.join(MUTABLE)}")
        elif key not in spec.axes:
            problems.append(f"scheduler.mutate.{i}: {key} is not an axis; PBT changes a setting "
                            f"within its axis's values or range: add axes.{key}")
    if len(set(options.mutate)) != len(options.mutate):
        problems.append("scheduler.mutate: an axis is listed twice; list each once")
    if options.perturbation_interval >= spec.trial.epochs:
        problems.append(f"scheduler.perturbation_interval: {options.perturbation_interval} "
                        f"epochs leaves no change within trial.epochs {spec.trial.epochs}; "
                        f"lower it or raise epochs")
    if spec.search == "optuna":
        problems.append("search: PBT draws its own population and changes it as it trains; "
                        "use search: random (or grid) with scheduler.type: pbt")
    if spec.seeds > 1:
        problems.append(f"seeds: PBT trials trade weights, so seeds: {spec.seeds} would not "
                        f"repeat one configuration; set seeds: 1 and raise num_samples")
    if spec.trial_count() < 2:
        problems.append("num_samples: PBT needs a population of at least 2 trials (4 or more "
                        "is useful); raise num_samples")
    return problems


def objective_problems(spec: SweepSpec) -> list[str]:
    """What is wrong with `objectives:` and `choose_within:`."""
    problems = []
    if spec.choose_within and not spec.objectives:
        problems.append("choose_within: only a multi-objective search chooses within limits; "
                        "add objectives (e.g. {val_accuracy: max, seconds: min}) or remove it")
    if not spec.objectives:
        return problems
    for name, mode in spec.objectives.items():
        if name not in OBJECTIVES:
            problems.append(f"objectives.{name}: not an objective; choose from "
                            f"{', '.join(OBJECTIVES)}")
        elif mode != ("max" if name.endswith("accuracy") else "min"):
            problems.append(f"objectives.{name}: {mode} would optimise it the wrong way; set "
                            f"{'max' if mode == 'min' else 'min'}")
    if len(spec.objectives) < 2:
        problems.append("objectives: one objective is the metric alone; name at least two "
                        "(e.g. {val_accuracy: max, seconds: min}) or remove objectives")
    if spec.metric not in spec.objectives:
        problems.append(f"objectives: the front is read against the metric {spec.metric}; "
                        f"add {spec.metric} to them")
    if spec.search != "optuna":
        problems.append(f"search: a multi-objective search is Optuna's; set search: optuna "
                        f"(not {spec.search}) or remove objectives")
    if spec.scheduler.type != "none":
        problems.append(f"scheduler: a multi-objective search compares whole trials; remove "
                        f"scheduler (type {spec.scheduler.type})")
    for name, limit in spec.choose_within.items():
        if name not in spec.objectives or name == spec.metric:
            others = [o for o in spec.objectives if o != spec.metric]
            problems.append(f"choose_within.{name}: not one of the other objectives; set a "
                            f"limit on one of {', '.join(others) or 'them'}")
        elif limit <= 0:
            problems.append(f"choose_within.{name}: {limit} is no limit; give a positive one")
    return problems
