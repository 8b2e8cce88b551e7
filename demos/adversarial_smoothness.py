"""The smoothness of adversarial training and Entropy-SGD (Kanai et al. 2021, "Smoothness Analysis of Adversarial
Training", arXiv 2103.01400; Chaudhari et al. 2017, "Entropy-SGD", ICLR). Facts: shared/specs/
width-depth-and-smoothness.md part B.

(a) The gradient-Lipschitz ratio R(theta, h) = max_u ||grad L(theta + h u) - grad L(theta)|| / h against h, on log-log
axes, for the clean, l2 and l-inf adversarial losses: of the binary linear logistic model (closed forms, B3), and of
a small tanh MLP (inner maximum by PGD to convergence, B7.2). A smooth loss gives a flat curve, a jump of the gradient
within distance h gives slope -1. (b) Entropy-SGD against SGD under l-inf PGD adversarial training of a half-width
MNIST CNN with an equal budget of gradient evaluations (Entropy-SGD with L inner steps gets 1/L as many outer steps),
over several seeds: mean and spread of clean and PGD accuracy (B7.4).
"""

import numpy as np

import scratchnet as sn
from demos.report import markdown_table, plt
from scratchnet import attacks, smoothness
from scratchnet.backend import use_backend
from scratchnet.lipschitz import AdversarialGradient, lipschitz_curve

DESCRIPTION = "R(theta, h) of clean, l2, l-inf losses; Entropy-SGD vs SGD in PGD-AT on MNIST (Kanai et al. 2021)"

CNN = {"channels": (16, 32), "hidden": 64}  # mnist_cnn at half width: the CPU budget
LINEAR = {"d": 100, "n": 200, "eps_inf": 0.05}  # B7.1
MLP = {"d": 20, "n": 64, "hidden": 32, "eps_inf": 0.1}  # B7.2
CURVE_KEYS = {"clean": "clean", "l2": "l2", "l-inf": "linf", "l-inf on w_i = 0": "linf_on_hyperplane"}
THEORY_SLOPES = {"smooth": 0.0, "jump": -1.0}  # d log R / d log h: flat where smooth, -1 across a jump (B3)


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per optimizer")
    parser.add_argument("--eps", type=float, default=0.1, help="l-inf radius of training and evaluation")
    parser.add_argument("--train-steps", type=int, default=3, help="PGD steps inside training (step 2.5 eps/steps)")
    parser.add_argument("--epochs", type=int, default=6, help="SGD epochs: the budget in gradient evaluations")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05, help="SGD: Nesterov momentum 0.9, cosine schedule")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="both optimizers")
    parser.add_argument("--L", type=int, default=3, help="Entropy-SGD inner (SGLD) steps; must divide --epochs")
    parser.add_argument("--gamma", type=float, default=1e-4, help="Entropy-SGD coupling gamma_0 (Chaudhari: MNIST)")
    parser.add_argument("--scoping", type=float, default=1e-3, help="gamma_t = gamma_0 (1 + scoping)^t")
    parser.add_argument("--noise", type=float, default=1e-4, help="SGLD thermal noise")
    parser.add_argument("--inner-lr", type=float, default=0.1, help="SGLD step size eta'")
    parser.add_argument("--outer-lr", type=float, default=1.0, help="eta of the reference code's outer step")
    parser.add_argument("--eval-size", type=int, default=1000, help="test images attacked (clean: all)")
    parser.add_argument("--eval-steps", type=int, default=20, help="PGD steps of the evaluation")
    parser.add_argument("--directions", type=int, default=32, help="random directions u in R(theta, h)")


def check_arguments(args) -> list[str]:
    """Equal gradient budgets: --L must divide --epochs (a quick run sets both itself). Checked by the runner before
    the run starts."""
    if not args.quick and args.epochs % args.L:
        return [f"--L must divide --epochs (equal budgets), got --L {args.L} and --epochs {args.epochs}"]
    return []


# ------------------------------------------------------------------------------------- (a) R(theta, h) curves
def gaussian_mixture(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n points x = 0.5 y m + N(0, I / d) in R^d with labels y in {-1, +1} and a random unit mean direction m."""
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], n)
    m = rng.standard_normal(d)
    return 0.5 * y[:, None] * m / np.linalg.norm(m) + rng.standard_normal((n, d)) / np.sqrt(d), y


def slope(hs, r, points: int = 4) -> float:
    """d log R / d log h fitted over the `points` smallest h."""
    order = np.argsort(hs)[:points]
    return float(np.polyfit(np.log(hs[order]), np.log(r[order]), 1)[0])


def linear_curves(hs, directions: int, seed: int) -> tuple[dict, dict]:
    """R(w, h) of the linear model's clean, l2 and l-inf losses at an early-stopped clean logistic-regression fit w
    (30 gradient steps from 0, clean loss about 0.15), and of the l-inf loss at the same w moved onto the
    hyperplane of its smallest coordinate (w_i = 0)."""
    d, eps = LINEAR["d"], LINEAR["eps_inf"]
    x, y = gaussian_mixture(LINEAR["n"], d, seed)
    w = np.zeros(d)
    for _ in range(30):  # gradient descent on the clean loss (smooth: ||Hessian|| <= mean ||x||^2 / 4 ~ 0.3)
        w -= 1.0 * smoothness.adversarial_gradient(w, x, y, 0.0, 2)
    on_plane = w.copy()
    on_plane[np.argmin(np.abs(w))] = 0.0

    def curve(point, radius, p):
        return lipschitz_curve(lambda v: smoothness.adversarial_gradient(v, x, y, radius, p), point, hs, directions,
                               seed)

    curves = {"clean": curve(w, 0.0, 2), f"l2 (eps {eps * np.sqrt(d):.2g})": curve(w, eps * np.sqrt(d), 2),
              f"l-inf (eps {eps})": curve(w, eps, np.inf),
              f"l-inf on w_i = 0 (eps {eps})": curve(on_plane, eps, np.inf)}
    marks = {"l2_bound": smoothness.l2_smoothness_bound(w, x, eps * np.sqrt(d)),
             "nearest_hyperplane": float(np.min(np.abs(w)))}
    return curves, marks


def mlp_curves(hs, directions: int, seed: int, n: int) -> tuple[dict, int]:
    """R(theta, h) of a tanh MLP's clean, l2 and l-inf cross-entropy losses at its initialization (float64), the
    inner maximum by PGD to convergence with warm starts; also the count of unconverged ascents."""
    d, eps = MLP["d"], MLP["eps_inf"]
    x, y = gaussian_mixture(n, d, seed)
    labels = ((y + 1) // 2).astype(np.int64)
    model = sn.nn.models.mlp([d, MLP["hidden"], 2], activation="tanh", seed=seed).to(np.float64)
    curves, unconverged = {}, 0
    with use_backend("numpy"):  # tiny shapes: Numba's thread start-up would dominate
        for name, radius, norm in (("clean", 0.0, "2"), (f"l2 (eps {eps * np.sqrt(d):.2g})", eps * np.sqrt(d), "2"),
                                   (f"l-inf (eps {eps})", eps, "inf")):
            gradient = AdversarialGradient(model, x, labels, radius, norm, seed=seed)
            curves[name] = lipschitz_curve(gradient, gradient.theta0, hs, directions, seed)
            unconverged += gradient.unconverged
    return curves, unconverged


def curve_figure(panels) -> plt.Figure:
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2))
    for ax, (title, hs, curves, marks) in zip(axes, panels, strict=True):
        for name, r in curves.items():
            ax.loglog(hs, r, "o-", label=name)
        if "l2_bound" in marks:
            ax.axhline(marks["l2_bound"], color="gray", ls="--", label="l2 bound (||x|| + eps)^2/4 + eps/||w||")
        if "nearest_hyperplane" in marks:
            ax.axvline(marks["nearest_hyperplane"], color="gray", ls=":", label="distance to nearest w_i = 0")
        ax.set(xlabel="h", ylabel="R(theta, h)", title=title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def run_curves(args, report) -> None:
    linear_hs = np.logspace(-1, -7, 7 if args.quick else 13)
    mlp_hs = np.logspace(0, -3, 3 if args.quick else 7)
    linear, marks = linear_curves(linear_hs, args.directions, seed=0)
    mlp, unconverged = mlp_curves(mlp_hs, max(4, args.directions // 4), seed=0, n=16 if args.quick else MLP["n"])
    rows = []
    for model, hs, curves in (("linear", linear_hs, linear), ("mlp", mlp_hs, mlp)):
        for name, r in curves.items():
            jump = name.startswith("l-inf on")
            rows.append([model, name, float(r.max()), float(r[np.argmin(hs)]), slope(hs, r),
                         THEORY_SLOPES["jump" if jump else "smooth"] if model == "linear" else "-"])
            key = f"{model}_{CURVE_KEYS[name.split(' (')[0]]}"
            report.metric(f"{key}_R_slope_small_h", rows[-1][4], rows[-1][5] if model == "linear" else None)
            report.metric(f"{key}_R_max", rows[-1][2])
    report.metric("linear_l2_R_at_smallest_h_over_bound", linear[next(k for k in linear if k.startswith("l2"))][-1]
                  / marks["l2_bound"])
    report.section("(a) R(theta, h) against h", markdown_table(
        ["model", "loss", "max R", "R at smallest h", "slope (4 smallest h)", "theory slope"], rows) + f"""

Linear model (B3, B7.1): d = {LINEAR['d']}, n = {LINEAR['n']} points of a Gaussian mixture, float64, closed-form
Danskin gradients, at an early-stopped clean logistic-regression fit w; l2 radius eps_inf sqrt(d) (the l-inf ball's
circumscribed one); {args.directions} random directions per h. The theory (B3): the clean and l2 curves are flat (l2
below the bound {marks['l2_bound']:.4g} at w != 0: linear_l2_R_at_smallest_h_over_bound must be <= 1); the l-inf
curve has slope -1 wherever h reaches a hyperplane w_i = 0 (the nearest is at distance
{marks['nearest_hyperplane']:.3g}; a random unit u moves each coordinate by about h / sqrt(d), the largest of
{args.directions} by a few times that) and is flat below that; on a hyperplane it has slope -1 down to any h.

Small MLP (B7.2): tanh, {MLP['d']}-{MLP['hidden']}-2, at initialization, on the same kind of mixture in
d = {MLP['d']}; inner maximum by monotone PGD to convergence with warm starts ({unconverged} unconverged ascents);
l-inf eps {MLP['eps_inf']}, l2 eps {MLP['eps_inf']}*sqrt({MLP['d']}). Under l-inf the sign pattern of delta* flips
where a component of grad_x l changes sign, so R peaks at the h that reaches such flips and falls back where none
is within h (B4).""")
    report.section("Verdict on (a)", curves_verdict(linear_hs, linear, mlp, marks["l2_bound"]))
    report.figure(curve_figure([("linear logistic model (closed forms)", linear_hs, linear, marks),
                                ("tanh MLP (PGD to convergence)", mlp_hs, mlp, {})]), "lipschitz_curves.png",
                  "R(theta, h) against h, log-log: flat means a Lipschitz gradient, slope -1 a jump within h.")


def curves_verdict(linear_hs, linear, mlp, l2_bound) -> str:
    """Where the curves agree with the theory (B3: the slopes, and the l2 curve below its bound at small h) and
    with Kanai et al.'s ordering l-inf > l2 > clean."""
    slopes = {name: slope(linear_hs, r) for name, r in linear.items()}
    jump = next(k for k in slopes if k.startswith("l-inf on"))
    smooth = [k for k in slopes if k != jump]
    l2_ratio = linear[next(k for k in linear if k.startswith("l2"))][-1] / l2_bound
    agree = abs(slopes[jump] + 1) < 0.1 and all(abs(slopes[k]) < 0.1 for k in smooth) and l2_ratio <= 1
    order = sorted(mlp, key=lambda k: -mlp[k].max())
    expected = [k for k in mlp if k.startswith("l-inf")] + [k for k in mlp if k.startswith("l2")] + ["clean"]
    return (f"Linear model: the slopes at small h are {', '.join(f'{k}: {v:.2f}' for k, v in slopes.items())}, "
            f"and the l2 curve at the smallest h is {l2_ratio:.2f} of its bound; the theory (0 where smooth, -1 on a "
            f"hyperplane w_i = 0, the l2 curve at most its bound) {'holds' if agree else 'does NOT hold'}. "
            f"MLP: the largest R over h orders as {' > '.join(order)}, "
            f"{'as' if order == expected else 'NOT as'} Kanai et al. state (l-inf > l2 > clean); at the smallest h "
            f"the order is {' > '.join(sorted(mlp, key=lambda k: -mlp[k][-1]))}: where no sign flip of grad_x l is "
            "within h, the l-inf delta* stays at the same corner of the box and R falls back to a local constant, "
            "so the l-inf non-smoothness shows as jumps at the scale of the flips.")


# --------------------------------------------------------------------------- (b) Entropy-SGD vs SGD in PGD-AT
class CountedObjective:
    """An objective that counts the examples it is evaluated on: one gradient evaluation (an attack and a backward
    pass) per example per call, whether `fit` or Entropy-SGD's inner steps call it."""

    def __init__(self, objective):
        self.objective, self.examples = objective, 0

    def schedule(self, t: float) -> None:
        self.objective.schedule(t)

    def __call__(self, model, x, y, rng):
        self.examples += len(y)
        return self.objective(model, x, y, rng)


def reference_outer_lr(eta: float, gamma: float, scoping: float, epochs: int, batches: int):
    """The reference code's outer step is theta <- theta - eta (theta - mu), without the factor gamma_t of
    `EntropySGD` (B5.4), so lr(t) = eta_t / gamma_t, gamma_t = gamma (1 + scoping)^(outer steps so far); eta_t
    follows the same cosine decay as the SGD baseline."""
    cosine = sn.optim.Cosine(eta, epochs)
    return lambda t: cosine(t) / (gamma * (1 + scoping) ** round(t * batches))


def train(optimizer_name: str, seed: int, args, train_set, test, evaluation) -> dict:
    """PGD-AT of the half-width MNIST CNN with one optimizer and seed; clean and PGD accuracy of the last epoch."""
    model = sn.nn.models.mnist_cnn(seed=seed, **CNN)
    loader = sn.data.BatchLoader(train_set, args.batch_size, shuffle=True, seed=seed)
    objective = CountedObjective(sn.objectives.PGDAT(eps=args.eps, steps=args.train_steps))
    if optimizer_name == "SGD":
        epochs = args.epochs
        optimizer = sn.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                                 weight_decay=args.weight_decay)
        schedule = sn.optim.Cosine(args.lr, epochs)
    else:
        epochs = args.epochs // args.L
        optimizer = sn.optim.EntropySGD(model.parameters(), lr=args.outer_lr / args.gamma, L=args.L, gamma=args.gamma,
                                        scoping=args.scoping, inner_lr=args.inner_lr, noise=args.noise,
                                        weight_decay=args.weight_decay, seed=seed)
        schedule = reference_outer_lr(args.outer_lr, args.gamma, args.scoping, epochs, len(loader))
    print(f"PGD-AT with {optimizer_name}, seed {seed} ({epochs} epochs)", flush=True)
    history = sn.training.fit(model, loader, None, objective, optimizer, schedule, epochs, seed=seed)
    pgd = {"PGD": lambda m, x, y, e: attacks.pgd(m, x, y, e, steps=args.eval_steps, rng=seed)}
    robust = attacks.robust_accuracy(model, evaluation.x, evaluation.y, pgd, args.eps, progress=False)
    return {"optimizer": optimizer_name, "seed": seed, "clean": sn.training.evaluate(model, test)["accuracy"],
            "robust": robust["worst_case"][0], "train_adv_loss": history[-1]["train_loss"],
            "grad_evals_per_example": objective.examples / len(train_set), "outer_steps": epochs * len(loader),
            "minutes": sum(r["seconds"] for r in history) / 60}


def mean_sd(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"


def run_training(args, report) -> None:
    train_set, test = sn.data.mnist()
    if args.quick:
        rng = np.random.default_rng(0)
        train_set = train_set.subset(rng.permutation(len(train_set))[:256])
        test = test.subset(np.arange(300))
        args.seeds, args.epochs, args.L, args.eval_size, args.eval_steps = 1, 2, 2, 100, 5
    evaluation = test.subset(np.arange(min(args.eval_size, len(test))))
    report.config.update(train_size=len(train_set), test_size=len(test), eval_size=len(evaluation), cnn=CNN,
                         seeds=args.seeds, epochs=args.epochs, L=args.L, eval_steps=args.eval_steps)
    runs = [train(name, seed, args, train_set, test, evaluation) for seed in range(args.seeds)
            for name in ("SGD", "Entropy-SGD")]

    by = {name: [r for r in runs if r["optimizer"] == name] for name in ("SGD", "Entropy-SGD")}
    summary = [[name, len(rs), mean_sd([r["clean"] for r in rs]), mean_sd([r["robust"] for r in rs]),
                mean_sd([r["train_adv_loss"] for r in rs]), rs[0]["grad_evals_per_example"], rs[0]["outer_steps"],
                float(np.mean([r["minutes"] for r in rs]))] for name, rs in by.items()]
    pgd_name = f"PGD-{args.eval_steps}"
    for name, rs in by.items():
        for what, label in (("clean", "clean"), ("robust", f"{pgd_name.lower().replace('-', '')}_eps{args.eps}")):
            values = [r[what] for r in rs]
            key = f"{name.lower().replace('-', '_')}_{label}_accuracy"
            report.metric(f"{key}_mean", np.mean(values))
            report.metric(f"{key}_sd", np.std(values, ddof=1) if len(values) > 1 else 0.0)
    gain = {k: np.array([e[k] - s[k] for s, e in zip(by["SGD"], by["Entropy-SGD"], strict=True)])
            for k in ("clean", "robust")}
    report.metric(f"entropy_sgd_minus_sgd_{pgd_name.lower().replace('-', '')}_accuracy_mean", gain["robust"].mean())
    report.metric("entropy_sgd_minus_sgd_clean_accuracy_mean", gain["clean"].mean())

    table = markdown_table(["optimizer", "seeds", "clean (mean ± sd)", f"{pgd_name} (mean ± sd)",
                            "train adv. loss", "grad evals / example", "outer steps", "minutes / run"], summary)
    per_seed = markdown_table(["optimizer", "seed", "clean", pgd_name, "train adv. loss"],
                              [[r["optimizer"], r["seed"], r["clean"], r["robust"], r["train_adv_loss"]] for r in runs])
    report.section(f"(b) Entropy-SGD against SGD in PGD-AT, l-inf eps = {args.eps}", f"""{table}

{per_seed}

mnist_cnn(channels={CNN['channels']}, hidden={CNN['hidden']}) (half the default width: the CPU budget), trained by
PGD-AT (Madry et al.) with {args.train_steps}-step PGD (step 2.5 eps / steps, random start) on {len(train_set)}
MNIST images; clean accuracy on {len(test)} test images, {pgd_name} (step 2.5 eps / steps, random start) on the
first {len(evaluation)}; the last epoch is reported (no checkpoint selection). Equal budgets: SGD runs
{args.epochs} epochs (Nesterov momentum 0.9, lr {args.lr}, cosine to 0, weight decay {args.weight_decay});
Entropy-SGD runs {args.epochs // args.L} epochs of outer steps with L = {args.L} SGLD steps each, every step on a new
minibatch (as the reference) with a fresh PGD attack at the inner iterate theta'; the column "grad evals / example"
is counted, not assumed. Entropy-SGD
follows Chaudhari et al.'s MNIST values (gamma_0 = {args.gamma}, scoping {args.scoping}, noise {args.noise}, SGLD
step {args.inner_lr}, mu averaging 0.25, weight decay {args.weight_decay} in the inner gradient) and the reference
code's outer step theta <- theta - eta (theta - mu) with eta = {args.outer_lr}, decayed by the same cosine; L =
{args.L} instead of their 20 (the budget). Deviation: the inner steps have no momentum.""")
    accuracy = {what: [np.mean([r[what] for r in by[name]]) for name in by] for what in ("robust", "clean")}
    images = {"robust": len(evaluation), "clean": len(test)}
    report.section("Verdict on Entropy-SGD", verdict(gain, accuracy, images, pgd_name, args, len(train_set)))


def noise(gain, accuracies, images: int) -> float:
    """What a mean paired difference must exceed to count: two standard errors of the mean over the seeds (same
    seed: same init and data order), and at least two standard errors of a difference of the two arms' accuracies
    on the N images both are scored on, sqrt((p1 (1 - p1) + p2 (1 - p2)) / N) (the seeds share those images, so
    their spread leaves that error out; taken as for independent samples, which shared images can only lower)."""
    p = np.asarray(accuracies, dtype=float)
    return max(2 * gain.std(ddof=1) / np.sqrt(len(gain)), 2 * np.sqrt(np.sum(p * (1 - p)) / images))


def verdict(gain, accuracy, images, pgd_name, args, train_size) -> str:
    """Helped or hurt only where the mean paired difference exceeds its `noise`; `accuracy[what]` holds the two
    arms' mean accuracies, `images[what]` how many test images each is measured on."""
    n = len(gain["robust"])
    lines = [f"Paired by seed, Entropy-SGD minus SGD: {pgd_name} accuracy {mean_sd(gain['robust'])}, clean accuracy "
             f"{mean_sd(gain['clean'])} over {n} seed{'s' if n > 1 else ''}."]
    outcomes = []
    for what in ("robust", "clean"):
        mean, band = gain[what].mean(), noise(gain[what], accuracy[what], images[what]) if n > 1 else np.nan
        outcomes.append(f"cannot be judged on {what} accuracy with one seed" if n == 1 else
                        f"helped {what} accuracy" if mean > band else f"hurt {what} accuracy" if mean < -band else
                        f"changed {what} accuracy by less than its noise ({band:.4f}: two standard errors over the "
                        f"seeds, or the sampling error of {images[what]} test images)")
        lines.append(f"At our scale ({train_size} images, {args.epochs} SGD-epochs of gradient evaluations, eps "
                     f"{args.eps}), Entropy-SGD {outcomes[-1]}.")
    lines.append(
        "The papers: Kanai et al.'s abstract claims that Entropy-SGD smooths the non-smooth adversarial loss and "
        "improves the performance of adversarial training; their datasets, models, hyperparameters and numbers were "
        "not available to us (spec B6), so none is quoted beside ours. Chaudhari et al. proposed Entropy-SGD for "
        "plain training and report generalization comparable to or better than SGD with L = 20. "
        + ("We agree with Kanai et al. at our scale." if outcomes[0].startswith("helped") else
           "One seed cannot test their claim." if n == 1 else
           f"We do not reproduce the gain at our scale (equal gradient budget, L = {args.L}, eps {args.eps}): "
           "this says that here the smoothing does not pay for the L-fold fewer outer steps, not that the paper's "
           "larger-scale result is wrong."))
    return "\n\n".join(lines)


def run(args, report) -> None:
    run_curves(args, report)
    run_training(args, report)
