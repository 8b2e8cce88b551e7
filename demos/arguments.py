"""The ranges of the demos' numeric options, checked by the runner before a demo starts: a bad value stops the run
with a message naming the option, not with a traceback after hours of training or with a silently odd run (an
untrained model evaluated, an eps beyond the [0, 1] image range). A demo with a rule of its own (one option must
divide another, say) states it in a `check_arguments(args)` of its own, which the runner calls too."""

AT_LEAST_ONE = {"epochs", "batch_size", "train_size", "train_steps", "final_steps", "eval_size", "eval_steps",
                "attack_steps", "pgd_steps", "targets", "probe_size", "seeds", "L", "directions", "d", "clean_steps",
                "adv_steps", "image_clean_epochs", "image_adv_epochs", "width", "depth"}
AT_LEAST_ZERO = {"seed", "shift", "final_epochs", "warmup_epochs", "beta", "weight_decay", "scoping", "noise",
                 "monitor_size", "train_eval_size"}  # 0: none (a demo that needs some says so itself)
ABOVE_ZERO = {"lr", "final_lr", "inner_lr", "outer_lr", "train_step_size", "gamma", "init", "k"}
RADII = {"eps", "train_eps", "eps_train", "image_eps"}  # l-inf radii of images in [0, 1]
FRACTIONS = {"p_start", "p_end"}  # of the epochs
DECAYS = {"average"}  # in [0, 1)


def _problem(name: str, value) -> str | None:
    option = "--" + name.replace("_", "-")
    if name in AT_LEAST_ONE and not value >= 1:  # NaN too
        return f"{option} must be at least 1, got {value}"
    if name in AT_LEAST_ZERO and not value >= 0:
        return f"{option} must be at least 0, got {value}"
    if name in ABOVE_ZERO and not value > 0:
        return f"{option} must be above 0, got {value}"
    if name in RADII | FRACTIONS and not 0 <= value <= 1:
        return f"{option} must be in [0, 1], got {value}"
    if name in DECAYS and not 0 <= value < 1:
        return f"{option} must be in [0, 1), got {value}"
    return None


def names(listed: str) -> list[str]:
    """The names in a comma-separated option such as --arms."""
    return [name.strip() for name in listed.split(",") if name.strip()]


def name_problems(listed: str, known, what: str) -> list[str]:
    """A message if the comma-separated `listed` names nothing, something not in `known`, or one twice (its
    results would overwrite each other's), for a demo's check_arguments."""
    given = names(listed)
    unknown = [name for name in given if name not in known]
    if unknown or not given or len(set(given)) < len(given):
        return [f"--{what} must name some of {list(known)}, each once, got {listed!r}"]
    return []


def problems(args, module) -> list[str]:
    """What is wrong with the parsed options of a demo: one message per option out of its range (None, an unset
    default, is fine; a list, as `--eps 0.02 0.1`, is checked value by value), then, when the ranges hold, the
    demo's own rules."""
    found = []
    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int | float) and not isinstance(item, bool):
                problem = _problem(name, item)
                if problem is not None:
                    found.append(problem)
                    break
    check = getattr(module, "check_arguments", None)
    return found or (check(args) if check is not None else [])
