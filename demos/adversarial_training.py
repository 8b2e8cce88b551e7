"""Adversarial training on MNIST: the CNN trained plain and with PGD-AT (Madry et al. 2018), TRADES
(Zhang et al. 2019), ALP (Kannan et al. 2018) and MART (Wang et al. 2020) at eps = 0.3 in l-inf, then attacked
with FGSM, PGD-40, APGD-CE and targeted APGD-DLR (Croce & Hein 2020), each on every correctly classified point,
and the worst case over all four. Facts: shared/specs/attacks-and-training.md.

Targets from the issue: PGD-40 drives the plain CNN below 2%; the PGD-AT CNN reaches 88% worst-case robust
accuracy at eps = 0.3 with 97% clean accuracy (Madry et al. report about 89% against PGD on full MNIST). The CNN
is Madry et al.'s MNIST network by default (`--model small` takes scratchnet's smaller `mnist_cnn`), trained on
images shifted by up to 2 pixels; what is attacked is the exponential moving average of its weights (`--average`,
Gowal et al. 2020); `--train-eps` sets the radius of the attack inside training apart from the evaluation's
`--eps`. The attack inside training is PGD-3 (step 0.2) for 120 epochs by default: on two cores, more and
cheaper updates did better than fewer with PGD-10 or PGD-20, and one FGSM step overfits catastrophically
(README). A final stage of 10 epochs (`--final-epochs`) then trains on from the averaged weights at a tenth
of the learning rate against a stronger attack, APGD-CE with 10 iterations: a curriculum in attack strength (Cai
et al. 2018), since on the trained model PGD-3 finds far fewer adversarial examples than APGD does. The worst case
on training images beside the test one tells a robust generalization gap from robustness that training did not
reach at all. Trained models are checkpointed in OUT/models, so an interrupted run resumes.
"""

from functools import partial

import numpy as np

import scratchnet as sn
from demos import arguments
from demos.report import checkpoint_path, markdown_table, plt, training_curves
from scratchnet import attacks, objectives
from scratchnet.weight_average import WeightAverage

DESCRIPTION = "the MNIST CNN trained plain, PGD-AT, TRADES, ALP and MART at eps 0.3, under four attacks"

FRAMEWORKS = {"plain": None, "PGD-AT": objectives.PGDAT, "TRADES": objectives.TRADES, "ALP": objectives.ALP,
              "MART": objectives.MART}
MODELS = {"madry": sn.nn.models.madry_mnist_cnn, "small": sn.nn.models.mnist_cnn}
# Madry et al. 2018, MNIST at eps 0.3, their strongest white-box attack (PGD-100, 20 restarts; full training set):
# context for the verdict, not a figure of the same evaluation (ours: a worst case over four attacks, one restart)
MADRY_PGD_ACCURACY = 0.893
# Arguments that a checkpoint's name leaves out: evaluation only, and (for the main stage) the final stage's.
EVALUATION_ONLY = ("frameworks", "eval_size", "eval_steps", "train_eval_size", "targets")
FINAL_STAGE = ("final_epochs", "final_steps", "final_lr")
# Part of the final stage's checkpoint name beside the arguments: what its attack keeps of each example, so that a
# final stage trained when APGD kept the evaluation's first misclassified iterate is never resumed as this one.
FINAL_ATTACK = "highest-loss iterate of every example"
# The targets at eps 0.3 (at another eps they are not shown): PGD-AT's worst case and clean accuracy, and
# the plain model's PGD-40 accuracy (an upper bound; judged only when the evaluation runs PGD-40)
TARGETS = {"plain_pgd40": 0.02, "pgd_at_worst_case": 0.88, "pgd_at_clean": 0.97}
TARGET_EPS, TARGET_PGD_STEPS = 0.3, 40


def add_arguments(parser) -> None:
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help=f"comma-separated subset of {list(FRAMEWORKS)}")
    parser.add_argument("--eps", type=float, default=0.3, help="l-inf radius of the evaluation")
    parser.add_argument("--train-eps", type=float, default=None,
                        help="l-inf radius of the attack inside training (default: --eps)")
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--warmup-epochs", type=float, default=10.0, help="eps grows linearly over these epochs")
    parser.add_argument("--train-steps", type=int, default=3, help="PGD steps of the attack inside training")
    parser.add_argument("--train-step-size", type=float, default=0.2)
    parser.add_argument("--final-epochs", type=int, default=10,
                        help="epochs of a final stage with a stronger attack inside training, from the main "
                             "schedule's averaged weights (0: none)")
    parser.add_argument("--final-steps", type=int, default=10, help="APGD-CE iterations in the final stage")
    parser.add_argument("--final-lr", type=float, default=1e-4, help="Adam's learning rate in the final stage "
                                                                     "(cosine schedule)")
    parser.add_argument("--beta", type=float, default=6.0, help="TRADES and MART trade-off")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (cosine schedule)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-size", type=int, default=2000,
                        help="test images attacked (2,000: all the held-out images of the 8,000 / 2,000 split)")
    parser.add_argument("--eval-steps", type=int, default=40, help="steps of PGD and of both APGD attacks")
    parser.add_argument("--train-eval-size", type=int, default=500,
                        help="training images (unshifted) attacked too, to tell a robust generalization gap from "
                             "robustness not learned even on the training set (0: none)")
    parser.add_argument("--targets", type=int, default=3, help="target classes of APGD-T (AutoAttack uses 9)")
    parser.add_argument("--shift", type=int, default=2,
                        help="augment training images by random shifts of up to this many pixels (0: none)")
    parser.add_argument("--monitor-size", type=int, default=200,
                        help="test images attacked with PGD-10 after every epoch (0: none)")
    parser.add_argument("--model", choices=sorted(MODELS), default="madry",
                        help="madry: Madry et al.'s MNIST network (3.3M parameters); small: scratchnet's mnist_cnn")
    parser.add_argument("--average", type=float, default=0.998,
                        help="decay of the weight average evaluated in place of the last weights (0: none)")
    parser.add_argument("--seed", type=int, default=0)


def check_arguments(args) -> list[str]:
    """Known framework names (checked by the runner before the run starts)."""
    return arguments.name_problems(args.frameworks, FRAMEWORKS, "frameworks")


def _train_eps(args) -> float:
    return args.eps if args.train_eps is None else args.train_eps


def _objective(name, args, final: bool = False):
    """The framework's objective for the main schedule or, with `final`, for the final stage: no warm-up, and
    APGD-CE with `--final-steps` iterations as the attack (PGD with as many steps for TRADES, whose attack
    maximizes the KL divergence, which APGD does not)."""
    if FRAMEWORKS[name] is None:
        return sn.training.standard
    if final:
        settings = dict(eps=_train_eps(args), steps=args.final_steps,
                        attack="pgd" if FRAMEWORKS[name].attack_loss == "kl" else "apgd")
    else:
        settings = dict(eps=_train_eps(args), steps=args.train_steps, step_size=args.train_step_size,
                        warmup_epochs=args.warmup_epochs)
    if name in ("TRADES", "MART"):
        settings["beta"] = args.beta
    return FRAMEWORKS[name](**settings)


class RobustMonitor(sn.training.Callback):
    """After every epoch: PGD-10 accuracy at eps on a fixed test subset, as `test_robust_accuracy` in the epoch's
    record, to watch robust overfitting (Rice et al. 2020) as it happens rather than after the run; with a weight
    average, that of the averaged weights too, as `test_robust_accuracy_averaged`."""

    STEPS = 10

    def __init__(self, monitor, eps: float, seed: int, average=None):
        self.monitor, self.eps, self.seed, self.average = monitor, eps, seed, average

    def on_epoch_end(self, state) -> None:
        state.history[-1]["test_robust_accuracy"] = self._accuracy(state.model)
        if self.average is not None:
            with self.average.applied() as averaged:
                state.history[-1]["test_robust_accuracy_averaged"] = self._accuracy(averaged)

    def _accuracy(self, model) -> float:
        return _robustness_curve(model, self.monitor.x, self.monitor.y, [self.eps], self.STEPS, self.seed)[0]


def _train(name, args, train, test, report):
    """The main schedule, then (for the adversarial frameworks, with `--final-epochs`) the final stage."""
    model = MODELS[args.model](seed=args.seed)
    augment = sn.data.RandomCrop(args.shift) if args.shift > 0 else None
    loader = sn.data.BatchLoader(train, args.batch_size, shuffle=True, seed=args.seed, augment=augment)
    history = _stage(name, model, args, loader, test, report, final=False)
    if args.final_epochs > 0 and FRAMEWORKS[name] is not None:
        final = _stage(name, model, args, loader, test, report, final=True)
        history += [dict(record, epoch=record["epoch"] + args.epochs) for record in final]
    return model, history


def _stage(name, model, args, loader, test, report, final: bool) -> list[dict]:
    """One `fit` with Adam on a cosine schedule, its own weight average and checkpoint; the model ends holding
    the averaged weights, which the final stage starts from."""
    epochs, lr = (args.final_epochs, args.final_lr) if final else (args.epochs, args.lr)
    monitor = test.subset(np.arange(min(args.monitor_size, len(test))))
    average = WeightAverage(model, args.average) if args.average > 0 else None
    callbacks = [average] if average is not None else []
    if args.monitor_size > 0:
        callbacks.append(RobustMonitor(monitor, args.eps, args.seed, average))
    optimizer = sn.optim.Adam(model.parameters(), lr=lr)
    settings = {k: v for k, v in vars(args).items() if k not in EVALUATION_ONLY + (() if final else FINAL_STAGE)}
    settings |= {"final_attack": FINAL_ATTACK} if final else {}
    checkpoint = checkpoint_path(report.out, f"{name}_{args.model}{'_final' if final else ''}", settings)
    print(f"training {name} ({epochs} epochs{', final stage' if final else ''})", flush=True)
    history = sn.training.fit(model, loader, test, _objective(name, args, final), optimizer,
                              sn.optim.Cosine(lr, epochs), epochs, callbacks=callbacks, checkpoint=checkpoint,
                              resume=True, seed=args.seed)
    if average is not None:
        model.load_state_dict(average.average)
    return history


def _attacks(args):
    steps = args.eval_steps
    return {
        "FGSM": attacks.fgsm,
        f"PGD-{steps}": partial(attacks.pgd, steps=steps, step_size=0.01 * 40 / steps, rng=args.seed),
        "APGD-CE": partial(attacks.apgd, steps=steps, loss="ce", rng=args.seed),
        "APGD-T": partial(attacks.apgd, steps=steps, loss="dlr", targeted=True, n_targets=args.targets,
                          rng=args.seed),
    }


def _worst_case(model, data, suite, eps) -> float:
    """The fraction of `data` that no attack of `suite` fools at eps (AutoAttack's cascade)."""
    return attacks.robust_accuracy(model, data.x, data.y, suite, eps, progress=False)["worst_case"][0]


def _robustness_curve(model, x, y, epsilons, steps, seed):
    """PGD accuracy at each eps (step 2.5 eps / steps)."""
    curve = []
    for eps in epsilons:
        attack = {"PGD": partial(attacks.pgd, steps=steps, rng=seed)}
        result = attacks.robust_accuracy(model, x, y, attack, eps, cascade=False, progress=False)
        curve.append(result["worst_case"][0])
    return curve


def run(args, report) -> None:
    names = arguments.names(args.frameworks)
    train, test = sn.data.mnist()
    if args.quick:
        rng = np.random.default_rng(args.seed)
        train = train.subset(rng.permutation(len(train))[:512])
        args.epochs, args.warmup_epochs, args.train_steps, args.eval_size, args.eval_steps, args.targets = (
            1, 0.5, 3, 100, 5, 1)
        args.final_epochs, args.final_steps = min(args.final_epochs, 1), 3
        args.monitor_size, args.train_eval_size = min(args.monitor_size, 100), min(args.train_eval_size, 100)
        test = test.subset(np.arange(500))
    evaluation = test.subset(np.arange(min(args.eval_size, len(test))))
    probe = train.subset(np.arange(min(args.train_eval_size, len(train))))
    args.train_size = len(train)
    report.config.update(train_size=len(train), test_size=len(test), eval_size=len(evaluation), epochs=args.epochs)

    suite = _attacks(args)
    epsilons = [0.1, 0.3] if args.quick else [0.0, 0.1, 0.2, 0.3, 0.4]
    rows, curves, histories = [], {}, {}
    pgd_name = f"PGD-{args.eval_steps}"
    for name in names:
        model, histories[name] = _train(name, args, train, test, report)
        result = attacks.robust_accuracy(model, evaluation.x, evaluation.y, suite, args.eps, cascade=False)
        rows.append({"model": name, "clean": result["clean"],
                     **{attack: accuracy[0] for attack, accuracy in result["attacks"].items()},
                     "worst case": result["worst_case"][0],
                     **({"worst case, train": _worst_case(model, probe, suite, args.eps)} if len(probe) else {}),
                     f"test acc. ({len(test)})": sn.training.evaluate(model, test)["accuracy"],
                     "train min": sum(r["seconds"] for r in histories[name]) / 60})
        curves[name] = _robustness_curve(model, evaluation.x, evaluation.y, epsilons, min(20, args.eval_steps),
                                         args.seed)
        key, judged = name.lower().replace("-", "_"), args.eps == TARGET_EPS
        report.metric(f"{key}_clean_accuracy", result["clean"],
                      TARGETS["pgd_at_clean"] if name == "PGD-AT" and judged else None)
        report.metric(f"{key}_worst_case_accuracy_eps{args.eps}", result["worst_case"][0],
                      TARGETS["pgd_at_worst_case"] if name == "PGD-AT" and judged else None)
        if name == "plain":
            report.metric(f"plain_{pgd_name.lower().replace('-', '')}_accuracy_eps{args.eps}", rows[-1][pgd_name],
                          TARGETS["plain_pgd40"] if judged and args.eval_steps == TARGET_PGD_STEPS else None)

    report.section(f"Accuracy under attack at eps = {args.eps} on {len(evaluation)} test images", markdown_table(
        list(rows[0]), [list(r.values()) for r in rows]) + "\n\nEach attack runs on every correctly classified "
        f"point; the worst case counts the points that no attack fooled. PGD: {args.eval_steps} steps with random "
        f"start; APGD-CE and APGD-T: {args.eval_steps} iterations each, APGD-T against the top {args.targets} "
        "other classes." + (f" The train column runs the same attacks on the first {len(probe)} training images, "
                            "unshifted." if len(probe) else ""))
    report.section("Checks", _checks(rows, pgd_name))
    report.section("Verdict", _verdict(rows, args, histories))
    report.figure(_curve_figure(curves, epsilons), "robust_accuracy_vs_eps.png",
                  f"PGD-{min(20, args.eval_steps)} accuracy against the radius eps for each model.")
    for name, history in histories.items():
        inputs = "adversarial inputs" if name == "PGD-AT" else "clean inputs"  # the logits its objective returns
        report.figure(training_curves(history, f"{name} (train accuracy: on {inputs})"),
                      f"training_{name.lower().replace('-', '_')}.png",
                      f"Training curves of {name}" + (f"; test (PGD): PGD-{RobustMonitor.STEPS} at eps {args.eps} on "
                                                      f"{args.monitor_size} test images." if args.monitor_size > 0
                                                      else "."))


def _checks(rows, pgd_name) -> str:
    """The orderings a sound evaluation shows, whose failure points at masked gradients: multi-step PGD at least
    as strong as one FGSM step, and APGD-CE with the same number of steps at least as strong as PGD."""
    lines = []
    for r in rows:
        lines.append(f"- {r['model']}: {pgd_name} {r[pgd_name]:.4f} <= FGSM {r['FGSM']:.4f}: "
                     f"{'yes' if r[pgd_name] <= r['FGSM'] else 'NO'}; APGD-CE {r['APGD-CE']:.4f} <= "
                     f"{pgd_name}: {'yes' if r['APGD-CE'] <= r[pgd_name] else 'NO'}")
    return "\n".join(lines)


def _verdict(rows, args, histories) -> str:
    text = []
    robust = [r for r in rows if r["model"] != "plain"]
    if robust:
        best = max(robust, key=lambda r: r["worst case"])
        final = _final_stage(args, [r["model"] for r in robust])
        text.append(f"At our scale ({args.epochs} epochs on {args.train_size} images, {args.train_steps}-step PGD "
                    f"at eps {_train_eps(args)} inside training{final}), {best['model']} has the highest "
                    f"worst-case accuracy at eps = {args.eps}: {best['worst case']:.4f}.")
    for r in rows:
        if r["model"] == "PGD-AT" and args.eps == TARGET_EPS:
            met = r["worst case"] >= TARGETS["pgd_at_worst_case"] and r["clean"] >= TARGETS["pgd_at_clean"]
            text.append(f"PGD-AT: {r['clean']:.4f} clean and {r['worst case']:.4f} worst case; the targets (97% "
                        f"clean, 88% worst case at eps {TARGET_EPS}) are {'met' if met else 'NOT met'} (Madry et "
                        f"al. report {MADRY_PGD_ACCURACY:.1%} against PGD-100 with 20 restarts, on full MNIST).")
        elif r["model"] == "plain" and args.eps == TARGET_EPS and args.eval_steps == TARGET_PGD_STEPS:
            met = r[f"PGD-{TARGET_PGD_STEPS}"] <= TARGETS["plain_pgd40"]
            text.append(f"The plain model keeps {r[f'PGD-{TARGET_PGD_STEPS}']:.4f} under PGD-{TARGET_PGD_STEPS}; the "
                        f"target (at most 2%) is {'met' if met else 'NOT met'}.")
        elif r["model"] == "PGD-AT":
            text.append(f"PGD-AT: {r['clean']:.4f} clean and {r['worst case']:.4f} worst case; the targets are for "
                        f"eps {TARGET_EPS}, so this run at eps {args.eps} is not judged against them.")
    for r in robust:
        if "worst case, train" in r:
            train = r["worst case, train"]
            text.append(f"{r['model']} keeps {train:.4f} worst case on its own training images against "
                        f"{r['worst case']:.4f} on test images: a robust generalization gap of "
                        f"{100 * (train - r['worst case']):.1f} points.")
    text.append(_catastrophic_overfitting(histories.get("PGD-AT", []), args))
    return " ".join(t for t in text if t)


def _final_stage(args, models) -> str:
    if args.final_epochs <= 0:
        return ""
    trades = " (PGD for TRADES)" if "TRADES" in models else ""
    return f", then {args.final_epochs} epochs against {args.final_steps}-step APGD-CE{trades}"


CATASTROPHIC_GAP = 0.25


def _catastrophic_overfitting(history, args) -> str:
    """Wong et al. (2020, "Fast is better than free"): with a weak attack inside training (one FGSM step), PGD-AT
    can suddenly learn to defeat that attack alone; its accuracy on the training attack's inputs then stays high
    while PGD accuracy collapses. Said when, at the last epoch, the first exceeds the monitored PGD accuracy by more
    than CATASTROPHIC_GAP. Only when both measure the same radius: training at eps and past the eps warm-up."""
    if not history or "test_robust_accuracy" not in history[-1]:
        return ""
    if _train_eps(args) != args.eps or args.epochs <= args.warmup_epochs:
        return ""
    train, pgd = history[-1]["train_accuracy"], history[-1]["test_robust_accuracy"]
    if train - pgd <= CATASTROPHIC_GAP:
        return ""
    return (f"Catastrophic overfitting (Wong et al. 2020): at the last epoch PGD-AT classifies {train:.4f} of its "
            f"training attack's inputs but only {pgd:.4f} of the monitored test images under PGD-"
            f"{RobustMonitor.STEPS}; the attack inside training no longer finds what PGD finds (use more steps).")


def _curve_figure(curves, epsilons):
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(epsilons, curve, "o-", label=name)
    ax.set(xlabel="eps (l-inf)", ylabel="accuracy under PGD", title="robust accuracy against eps", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
