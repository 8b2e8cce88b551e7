"""Width and depth of robust wide ResNets (Huang et al. 2021, "Exploring Architectural Ingredients of Adversarially
Robust Deep Neural Networks", NeurIPS; shared/specs/width-depth-and-smoothness.md A7), scaled down to Fashion-MNIST
at eps = 0.1 (l-inf) with PGD adversarial training.

Six arms of `sn.nn.WideResNet` (stem of 4 channels, stage channels 4 W1, 8 W2, 16 W3, strides 2-2-2 so that the
28x28 images are attacked at full resolution while the stages run at 14, 7 and 4 pixels):
uniform W 3-3-3; last stage reduced 3-3-1; "R-style" 6-4-2, which widens stages 1-2 and narrows stage 3 at the
uniform arm's parameter count (+0.6%, counted in closed form); uniform 5-5-5 with 2.7x the parameters; and depth
d2-2-1 against d1-1-2. Each arm is trained with several seeds (the seed fixes the initialization, keyed per layer,
and the batch order) and evaluated by clean accuracy, PGD-20, CW-20 (PGD on the margin loss), APGD-CE, and the
paper's local Lipschitz metric (mean ||f(x) - f(x')||_1 / ||x - x'||_inf at the PGD-20 examples).

The paper's claims (spec A1): (1) more parameters do not necessarily help robustness; (2) reducing the last stage's
capacity helps; (3) under a fixed budget there is a best width/depth configuration (their grid favours deeper and
wider early stages). Our scale is far below theirs (WRN-34 on CIFAR-10, 100 epochs); see the report's budget note.
"""

import itertools
import time
from functools import partial

import numpy as np

import scratchnet as sn
from demos import arguments
from demos.report import markdown_table, plt
from scratchnet import attacks, objectives
from scratchnet.lipschitz import local_lipschitz, residual_lipschitz_bound

DESCRIPTION = "tiny WRNs of six width/depth configurations, PGD-trained on Fashion-MNIST at eps 0.1, over seeds"

BASE_CHANNELS, STRIDES = 4, (2, 2, 2)
ARMS = {  # name -> (depths, widths)
    "uniform 3-3-3": ((1, 1, 1), (3, 3, 3)),
    "last reduced 3-3-1": ((1, 1, 1), (3, 3, 1)),
    "R-style 6-4-2": ((1, 1, 1), (6, 4, 2)),
    "uniform 5-5-5": ((1, 1, 1), (5, 5, 5)),
    "depth 2-2-1": ((2, 2, 1), (3, 3, 3)),
    "depth 1-1-2": ((1, 1, 2), (3, 3, 3)),
}
# WRN-34-R and WRN-34-12 under TRADES, mean of 3 seeds, AutoAttack (Huang S. et al. 2023, Table 2; spec A5)
REPRODUCED_AA = {"wrn_34_r": 0.5323, "wrn_34_12": 0.5197}


# the defaults below: one epoch on the full training set, about 40 minutes on two cores
FULL = {"seeds": 3, "train_size": 60000, "epochs": 1, "eval_size": 300, "eval_steps": 20}


def add_arguments(parser) -> None:
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {list(ARMS)}")
    parser.add_argument("--seeds", type=int, default=FULL["seeds"])
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--train-size", type=int, default=FULL["train_size"],
                        help="training images (a random subset; 60000: all)")
    parser.add_argument("--epochs", type=int, default=FULL["epochs"])
    parser.add_argument("--train-steps", type=int, default=3, help="PGD steps inside training (step 2.5 eps / steps)")
    parser.add_argument("--lr", type=float, default=0.05, help="SGD (momentum 0.9); x0.1 at 75%% and 90%%")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-size", type=int, default=FULL["eval_size"], help="test images attacked")
    parser.add_argument("--eval-steps", type=int, default=FULL["eval_steps"], help="steps of PGD, CW and APGD")


def check_arguments(args) -> list[str]:
    """Known arm names (checked by the runner before the run starts)."""
    return arguments.name_problems(args.arms, ARMS, "arms")


def _train(depths, widths, seed, train, args):
    model = sn.nn.WideResNet(depths, widths, 10, 1, BASE_CHANNELS, STRIDES, rng=seed)
    loader = sn.data.BatchLoader(train, args.batch_size, shuffle=True, seed=seed)
    optimizer = sn.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    schedule = sn.optim.MultiStep(args.lr, [0.75 * args.epochs, 0.9 * args.epochs])
    objective = objectives.PGDAT(eps=args.eps, steps=args.train_steps, warmup_epochs=0.25 * args.epochs)
    start = time.perf_counter()
    sn.training.fit(model, loader, None, objective, optimizer, schedule, args.epochs, seed=seed, progress=False)
    return model, time.perf_counter() - start


def _evaluate(model, x, y, args, seed) -> dict:
    steps, eps = args.eval_steps, args.eps
    start = time.perf_counter()
    x_pgd = attacks.pgd(model, x, y, eps, steps=steps, step_size=eps / 10, rng=seed)
    clean = sn.training.predict(model, x).argmax(axis=1) == y
    suite = {"CW": partial(attacks.pgd, steps=steps, step_size=eps / 10, loss="cw", rng=seed),
             "APGD-CE": partial(attacks.apgd, steps=steps, loss="ce", rng=seed)}
    result = attacks.robust_accuracy(model, x, y, suite, eps, cascade=False, progress=False)
    return {"clean": float(clean.mean()),
            f"PGD-{steps}": float(np.mean(clean & (sn.training.predict(model, x_pgd).argmax(axis=1) == y))),
            f"CW-{steps}": result["attacks"]["CW"][0], "APGD-CE": result["attacks"]["APGD-CE"][0],
            "local Lipschitz": local_lipschitz(model, x, x_pgd),
            "log10 bound": float(np.log10(residual_lipschitz_bound(model, x.shape[1:]))),
            "eval seconds": time.perf_counter() - start}


def run(args, report) -> None:
    names = arguments.names(args.arms)
    train, test = sn.data.fashion_mnist()
    if args.quick:
        args.seeds, args.train_size, args.epochs, args.eval_size, args.eval_steps = 2, 128, 1, 32, 3
    rng = np.random.default_rng(0)
    if args.train_size < len(train):
        train = train.subset(rng.permutation(len(train))[:args.train_size])
    args.train_size = len(train)  # what ran (a larger request uses the whole set): the config and verdict say so
    evaluation = test.subset(rng.permutation(len(test))[:args.eval_size])
    report.config.update(train_size=len(train), eval_size=len(evaluation), base_channels=BASE_CHANNELS,
                         strides=STRIDES, arms={n: ARMS[n] for n in names})

    runs = {name: [] for name in names}
    for name in names:
        depths, widths = ARMS[name]
        for seed in range(args.seeds):
            model, seconds = _train(depths, widths, seed, train, args)
            runs[name].append({**_evaluate(model, evaluation.x, evaluation.y, args, seed), "train seconds": seconds})
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in runs[name][-1].items()), flush=True)

    params = {n: sn.nn.wide_resnet_parameters(*ARMS[n], 1, 10, BASE_CHANNELS, STRIDES) for n in names}
    summary = {n: {k: (float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs], ddof=1))
                       if len(rs) > 1 else float("nan")) for k in rs[0]} for n, rs in runs.items()}
    pgd, cw = f"PGD-{args.eval_steps}", f"CW-{args.eval_steps}"
    metrics = ["clean", pgd, cw, "APGD-CE", "local Lipschitz", "log10 bound"]
    rows = [[n, str(ARMS[n][0]), str(ARMS[n][1]), params[n]]
            + [f"{summary[n][k][0]:.3f} ± {summary[n][k][1]:.3f}" for k in metrics] for n in names]
    report.section(f"Results: mean ± sd over {args.seeds} seeds, {len(evaluation)} test images, eps = {args.eps}",
                   markdown_table(["arm", "depths", "widths", "params"] + metrics, rows)
                   + f"\n\n{pgd} and {cw}: step eps / 10 with a random start; APGD-CE: the same number of "
                   "iterations; each attack's own accuracy (a point counts if it is clean-correct and survives). "
                   f"Local Lipschitz: the paper's metric at the {pgd} examples. log10 bound: the residual "
                   "layer-norm bound of `scratchnet.lipschitz` (a standard bound, not the paper's theorem).")
    for n in names:
        key = n.split()[0].lower().replace("-", "_") + "_" + n.split()[-1].replace("-", "_")
        report.metric(f"{key}_parameters", params[n])
        for k in ("clean", pgd, "APGD-CE", "local Lipschitz"):
            report.metric(f"{key}_{k.lower().replace(' ', '_').replace('-', '')}_mean", summary[n][k][0])
    report.section("Verdict", _verdict(summary, params, args))
    report.section("Budget", _budget(runs, args, len(train)))
    report.figure(_figure(summary, pgd, lambda n: params[n], "parameters"), "robust_vs_parameters.png",
                  "Robust accuracy (mean ± sd over seeds) against the parameter count of each arm.")
    report.figure(_figure(summary, pgd, lambda n: BASE_CHANNELS * 4 * ARMS[n][1][2], "last-stage channels"),
                  "robust_vs_last_stage_width.png",
                  "Robust accuracy (mean ± sd over seeds) against the channel count of the last stage (16 W3).")


def _compare(summary, a, b, n: int, metric: str) -> tuple[float, float, str]:
    """(mean of a - mean of b over n seeds each, twice the standard error of the difference, a word for it)."""
    (ma, sa), (mb, sb) = summary[a][metric], summary[b][metric]
    diff, noise = ma - mb, 2 * np.sqrt((sa ** 2 + sb ** 2) / n)
    if not np.isfinite(noise):
        return diff, noise, "untested (one seed)"
    return diff, noise, "within noise" if abs(diff) <= noise else ("higher" if diff > 0 else "lower")


def _verdict(summary, params, args) -> str:
    n = args.seeds
    have = set(summary)
    pgd = f"PGD-{args.eval_steps}"
    lines = [f"Primary metric: {pgd} accuracy; 'noise' is twice the standard error of the difference of two "
             f"means over {n} seeds. Scale: {args.train_size} training images, {args.epochs} "
             f"epoch{'s' if args.epochs != 1 else ''}, "
             f"{args.train_steps}-step PGD in training, tiny WRNs; the paper trains WRN-34 for 100 epochs on "
             "CIFAR-10. An independent reproduction (Huang S. et al. 2023, TRADES, spec A5) finds WRN-34-R "
             f"{REPRODUCED_AA['wrn_34_r']:.4f} AutoAttack against {REPRODUCED_AA['wrn_34_12']:.4f} for the "
             "equal-size WRN-34-12.", ""]

    def line(claim, a, b, support):
        diff, noise, word = _compare(summary, a, b, n, pgd)
        verdict = {"higher": support[0], "lower": support[1]}.get(word, "not resolved (within noise)")
        if word.startswith("untested"):
            verdict = word
        lines.append(f"- {claim}: {a} minus {b} = {diff:+.4f} (noise ±{noise:.4f}): {word}; {verdict}.")

    if {"uniform 5-5-5", "uniform 3-3-3"} <= have:
        ratio = params["uniform 5-5-5"] / params["uniform 3-3-3"]
        line(f"(1) more parameters ({ratio:.1f}x) do not necessarily help", "uniform 5-5-5", "uniform 3-3-3",
             ("NOT supported here: the larger uniform net is more robust", "supported"))
    if {"uniform 5-5-5", "R-style 6-4-2"} <= have:
        line("(1) the 2.7x uniform net against the R-style net", "uniform 5-5-5", "R-style 6-4-2",
             ("NOT supported here", "supported"))
    if {"last reduced 3-3-1", "uniform 3-3-3"} <= have:
        line("(2) reducing the last stage helps", "last reduced 3-3-1", "uniform 3-3-3",
             ("supported", "NOT supported here: the reduced last stage is less robust"))
    if {"R-style 6-4-2", "uniform 3-3-3"} <= have:
        line("(2)+(3) at a fixed budget, moving capacity from the last stage to the early ones helps",
             "R-style 6-4-2", "uniform 3-3-3", ("supported", "NOT supported here"))
    if {"depth 2-2-1", "depth 1-1-2"} <= have:
        ratio = params["depth 2-2-1"] / params["depth 1-1-2"]
        line(f"(3) depth in the early stages beats depth in the last one (with {ratio:.2f}x the parameters: the "
             "two are not of one budget)", "depth 2-2-1", "depth 1-1-2", ("supported", "NOT supported here"))
    lip = sorted(summary, key=lambda k: summary[k]["local Lipschitz"][0])
    rho, p = rank_correlation([summary[k]["local Lipschitz"][0] for k in summary],
                              [summary[k][pgd][0] for k in summary])
    tie = ("untested (fewer than three arms, or no spread to rank)" if np.isnan(rho) else
           "supported: a lower constant goes with higher accuracy" if p < 0.05 and rho < 0 else
           "not resolved" if rho < 0 else "NOT supported here")
    lines += ["", f"Local Lipschitz (paper's metric), lowest to highest: {', '.join(lip)}. The paper ties "
              "robustness to a lower Lipschitz constant; the arm with the lowest metric is "
              f"{lip[0]}, the most robust by {pgd} is {max(summary, key=lambda k: summary[k][pgd][0])}. Over the "
              f"{len(summary)} arms the rank correlation of the two means is {rho:+.2f} (exact one-sided p = {p:.3f} "
              f"that arms in random order correlate as negatively): {tie}."]
    return "\n".join(lines)


def midranks(values) -> np.ndarray:
    """Ranks 0, 1, ... in increasing order, tied values sharing the mean of their ranks (accuracies of a few hundred
    images tie: ranks by position would order tied arms by where they stand in the list)."""
    values = np.asarray(values, dtype=float)
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    for value in np.unique(values):
        ranks[values == value] = ranks[values == value].mean()
    return ranks


def rank_correlation(a, b) -> tuple[float, float]:
    """Spearman's rho of a and b (the correlation of their midranks), and the exact one-sided p-value of a rho at
    most as large under every ordering of b's midranks (n! orderings: the demo has six arms). (nan, 1.0) when it
    cannot be told: fewer than three arms, or all of a or all of b tied."""
    ranks_a, ranks_b = midranks(a), midranks(b)
    if len(ranks_a) < 3 or np.ptp(ranks_a) == 0 or np.ptp(ranks_b) == 0:
        return float("nan"), 1.0
    centred_a = (ranks_a - ranks_a.mean()) / np.linalg.norm(ranks_a - ranks_a.mean())

    def rho(order):
        centred = order - order.mean()
        return float(centred_a @ centred / np.linalg.norm(centred))

    observed = rho(ranks_b)
    at_most = [rho(ranks_b[list(order)]) <= observed + 1e-12 for order in itertools.permutations(range(len(ranks_b)))]
    return observed, float(np.mean(at_most))


def _budget(runs, args, train_size) -> str:
    """Measured costs of this run, and what they predict for the default full run and for the full training set."""
    records = [r for rs in runs.values() for r in rs]
    train = sum(r["train seconds"] for r in records)
    evaluation = sum(r["eval seconds"] for r in records)
    per_image = train / (train_size * args.epochs * len(records))
    per_attack_step = evaluation / (len(records) * args.eval_size * (3 * args.eval_steps + 2))
    arms_seeds = len(runs) * FULL["seeds"]
    full = arms_seeds * (per_image * FULL["train_size"] * FULL["epochs"]
                         + per_attack_step * FULL["eval_size"] * (3 * FULL["eval_steps"] + 2))
    return (f"This run: {train:.0f} s training, {evaluation:.0f} s evaluation for {len(runs)} arms x {args.seeds} "
            f"seeds. Measured: {1000 * per_image:.1f} ms per training image ({args.train_steps}-step PGD-AT, mean "
            f"over arms) and {1000 * per_attack_step:.2f} ms per image and attack step. At these rates the default "
            f"full run ({FULL}: one epoch on the whole training set) takes about {full / 60:.0f} min on this "
            "machine as loaded now; the budget that fits 45 minutes on two cores is one epoch, so more epochs or "
            "seeds need a subset (`--train-size`). The quick run's rates are pessimistic (small batches, "
            "compilation); a full run's own numbers above are its measured time.")


def _figure(summary, pgd: str, x_of, xlabel):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, (pgd, "APGD-CE"), strict=True):
        for name in summary:
            mean, sd = summary[name][metric]
            ax.errorbar(x_of(name), mean, yerr=0 if np.isnan(sd) else sd, fmt="o", capsize=3, label=name)
        ax.set(xlabel=xlabel, ylabel=f"{metric} accuracy", title=f"{metric} against {xlabel}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    return fig
