"""The image-scale part of the feature_purification demo (Allen-Zhu & Li 2021, the CIFAR-10 experiments of their
section on real data; shared/specs/feature-purification.md section 5, item 3), here on MNIST with a small CNN.

Clean-train the CNN from its init, then continue from the clean weights with PGD adversarial training. The paper's
principle says adversarial training *purifies* what clean training learned rather than learning new features:
clean and adversarial weights stay highly correlated (and both far from the init), the change is low rank, and
the adversarially trained first-layer filters look cleaner and smoother. We measure per layer the median
per-unit cosines, the effective rank of the removed part V = W_clean - diag(beta) W_adv beside that of a Gaussian
matrix of the same shape, and the roughness of the first-layer filters, and draw the filters side by side.
"""

import matplotlib.pyplot as plt
import numpy as np

import scratchnet as sn
from demos.report import markdown_table
from scratchnet import attacks, objectives
from scratchnet import purification as P
from scratchnet.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential


def add_arguments(parser) -> None:
    parser.add_argument("--image-clean-epochs", type=int, default=6, help="MNIST CNN: clean epochs")
    parser.add_argument("--image-adv-epochs", type=int, default=6, help="MNIST CNN: PGD-AT epochs after them")
    parser.add_argument("--image-eps", type=float, default=0.2, help="MNIST CNN: l-inf radius of training and test")


def cnn(seed: int) -> Sequential:
    """5x5 filters, so that the first layer's 16 filters are pictures worth looking at."""
    rng = np.random.default_rng(seed)
    return Sequential(Conv2d(1, 16, 5, padding=2, rng=rng), ReLU(), MaxPool2d(2),
                      Conv2d(16, 32, 5, padding=2, rng=rng), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(32 * 7 * 7, 128, rng=rng), ReLU(), Linear(128, 10, rng=rng))


def _weights(model) -> dict[str, np.ndarray]:
    return {name: p.data.copy() for name, p in model.named_parameters() if name.endswith("weight")}


def _train(model, train, objective, epochs: int, lr: float, seed: int) -> None:
    loader = sn.data.BatchLoader(train, 128, shuffle=True, seed=seed)
    optimizer = sn.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sn.training.fit(model, loader, None, objective, optimizer, sn.optim.Cosine(lr, epochs), epochs, seed=seed)


def _accuracies(model, x, y, eps: float, seed: int) -> tuple[float, float]:
    clean = sn.training.predict(model, x).argmax(axis=1) == y
    x_adv = attacks.pgd(model, x, y, eps, steps=20, step_size=eps / 8, rng=seed)
    return float(clean.mean()), float(np.mean(clean & (sn.training.predict(model, x_adv).argmax(axis=1) == y)))


def run(args, report) -> None:
    train, test = sn.data.mnist()
    rng = np.random.default_rng(args.seed)
    if args.quick:  # in args, so that the recorded configuration is the one that ran
        args.image_clean_epochs, args.image_adv_epochs = 1, 1
        train = train.subset(rng.permutation(len(train))[:512])
    epochs = (args.image_clean_epochs, args.image_adv_epochs)
    held_out = test.subset(rng.permutation(len(test))[:100 if args.quick else 1000])
    eps = args.image_eps

    model = cnn(args.seed)
    weights = {"init": _weights(model)}
    _train(model, train, sn.training.standard, epochs[0], 0.05, args.seed)
    weights["clean"] = _weights(model)
    clean_scores = _accuracies(model, held_out.x, held_out.y, eps, args.seed)
    adversarial = objectives.PGDAT(eps=eps, steps=5, warmup_epochs=min(1.0, epochs[1] / 2))
    _train(model, train, adversarial, epochs[1], 0.02, args.seed)
    weights["adv"] = _weights(model)
    adv_scores = _accuracies(model, held_out.x, held_out.y, eps, args.seed)

    for phase, (clean, robust) in (("clean", clean_scores), ("adv", adv_scores)):
        report.metric(f"mnist_cnn_{phase}_trained_accuracy", clean)
        report.metric(f"mnist_cnn_{phase}_trained_pgd20_accuracy_linf_{eps}", robust)
    changes = {name: P.layer_change(weights["init"][name], weights["clean"][name], weights["adv"][name], args.seed)
               for name in weights["init"]}
    rough = {phase: float(np.median(P.roughness(weights[phase]["0.weight"]))) for phase in weights}
    first = changes["0.weight"]
    for key in ("cos_clean_adv", "cos_clean_init", "removed_effective_rank", "gaussian_effective_rank"):
        report.metric(f"mnist_cnn_conv1_{key}", first[key])
    for phase, value in rough.items():
        report.metric(f"mnist_cnn_conv1_{phase}_roughness", value)

    report.config.update(image_train_size=len(train), image_test_size=len(held_out), image_eps=eps)
    report.section("Image scale: a CNN on MNIST, clean training then adversarial training from it",
                   _table(changes, clean_scores, adv_scores, rough, epochs, eps, len(train), len(held_out)))
    report.figure(_filters(weights), "mnist_conv1_filters.png",
                  "The 16 first-layer 5x5 filters of the MNIST CNN at init (top), after clean training (middle) and "
                  "after adversarial training from the clean weights (bottom); each filter on its own colour scale.")
    report.figure(_spectra(changes), "mnist_removed_spectra.png",
                  "Per layer: the singular values of the removed part V = W_clean - diag(beta) W_adv (share of the "
                  "energy, cumulative) beside those of a Gaussian matrix of the same shape.")


def _table(changes, clean_scores, adv_scores, rough, epochs, eps, n_train, n_test) -> str:
    rows = [[name, c["full_rank"], f"{c['cos_clean_adv']:.3f}", f"{c['cos_clean_init']:.3f}",
             f"{c['cos_adv_init']:.3f}", f"{c['ratio']:.2f}", f"{c['removed_effective_rank']:.1f}",
             f"{c['clean_change_effective_rank']:.1f}", f"{c['gaussian_effective_rank']:.1f}",
             f"{c['removed_top_energy_share']:.3f}"] for name, c in changes.items()]
    table = markdown_table(["layer weight", "units (rank at most)", "cos(clean, adv)", "cos(clean, init)",
                            "cos(adv, init)", "||beta w'|| / ||v||", "eff. rank of V", "eff. rank of clean change",
                            "eff. rank of Gaussian", "top energy share of V"], rows)
    apart = [name for name, c in changes.items() if not c["cos_clean_adv"] > max(0.6, c["cos_clean_init"] + 0.1)]
    claims = [
        f"- Robustness: clean-trained {clean_scores[0]:.3f} clean / {clean_scores[1]:.3f} PGD-20 at l-inf {eps}; "
        f"after adversarial training from it {adv_scores[0]:.3f} / {adv_scores[1]:.3f}.",
        "- Principle (clean and adversarial weights highly correlated, both far from the init; here: cos(clean, "
        "adv) > 0.6 and at least 0.1 above cos(clean, init)): "
        + (f"**does not agree** in {', '.join(apart)}" if apart else "**agrees** in every layer")
        + "; cos(clean, adv) / cos(clean, init) per layer "
        + ", ".join(f"{c['cos_clean_adv']:.3f} / {c['cos_clean_init']:.3f}" for c in changes.values())
        + ". A layer that clean training moved little keeps a high cosine with its init.",
        "- Low rank of the change: the removed part's effective rank is "
        + ", ".join(f"{c['removed_effective_rank']:.1f} of {c['full_rank']} ({name})" for name, c in changes.items())
        + "; a Gaussian change of the same shapes has "
        + ", ".join(f"{c['gaussian_effective_rank']:.1f}" for c in changes.values())
        + (". **Agrees**: the change is far lower-rank than an unstructured one."
           if all(c["removed_effective_rank"] < 0.5 * c["gaussian_effective_rank"] for c in changes.values())
           else ". **Partly**: not every layer's change is below half the Gaussian rank.")
        + " For scale, clean training's own change W_clean - W_init has "
        + ", ".join(f"{c['clean_change_effective_rank']:.1f}" for c in changes.values()) + ".",
        f"- Smoother first-layer features after adversarial training: median roughness {rough['init']:.3f} at init, "
        f"{rough['clean']:.3f} clean, {rough['adv']:.3f} adversarial (white noise: 0.8); "
        + ("**agrees**." if rough["adv"] < 0.9 * rough["clean"] else "**does not agree** here (asks a 10% drop)."),
    ]
    return (f"{n_train} MNIST training images, clean training for {_count(epochs[0], 'epoch')} (SGD 0.05, cosine), "
            f"then {_count(epochs[1], 'epoch')} of PGD-5 adversarial training at l-inf {eps} from the clean weights "
            "(SGD 0.02, cosine, eps warm-up); "
            f"{n_test} held-out images. Per layer (rows: units, a conv filter flattened), medians over units:\n\n"
            + table + "\n\nThe paper's claims (its CIFAR-10 ResNets, spec section 5, recalled) against ours:\n\n"
            + "\n".join(claims))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _filters(weights):
    fig, axes = plt.subplots(3, 16, figsize=(16, 3.4))
    for row, phase in enumerate(("init", "clean", "adv")):
        for column, f in enumerate(weights[phase]["0.weight"][:, 0]):
            limit = np.abs(f).max()
            axes[row, column].imshow(f, cmap="RdBu_r", vmin=-limit, vmax=limit)
            axes[row, column].axis("off")
        axes[row, 0].set_title({"init": "init", "clean": "clean", "adv": "adversarial"}[phase], fontsize=8, loc="left")
    return fig


def _spectra(changes):
    fig, axes = plt.subplots(1, len(changes), figsize=(4 * len(changes), 3.4))
    for ax, (name, change) in zip(axes, changes.items(), strict=True):
        for key, label in (("removed_energy_curve", "removed part V"), ("gaussian_energy_curve", "Gaussian")):
            curve = change[key]
            ax.plot(np.arange(1, len(curve) + 1), curve, "o-", ms=2, label=label)
        ax.set(title=name, xlabel="singular value index", ylabel="cumulative energy share", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig
