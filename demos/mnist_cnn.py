"""Train the small MNIST CNN (two 3x3 convolutions, max-pooling, two linear layers) on MNIST or Fashion-MNIST.

The engine's end-to-end check: data loading, the Numba conv kernels, autograd, SGD with Nesterov momentum and a
cosine schedule, the training loop with checkpoints. Targets: 98.5% on the 8,000 / 2,000 split of the MNIST
test files (99% on full MNIST), 91% on the full Fashion-MNIST test set.
"""

import numpy as np

import scratchnet as sn
from demos.report import training_curves

DESCRIPTION = "the small CNN on MNIST or Fashion-MNIST (the engine end to end)"

TARGETS = {"mnist_split": 0.985, "mnist_full": 0.99, "fashion_mnist": 0.91}


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist")
    parser.add_argument("--epochs", type=int, default=None, help="default: 30 on the MNIST split, 15 otherwise")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)


def run(args, report) -> None:
    train, test = sn.data.mnist() if args.dataset == "mnist" else sn.data.fashion_mnist()
    target_key = args.dataset if args.dataset == "fashion_mnist" else (
        "mnist_full" if len(train) >= 60000 else "mnist_split")
    epochs = args.epochs or (30 if target_key == "mnist_split" else 15)
    if args.quick:
        rng = np.random.default_rng(args.seed)
        train = train.subset(rng.permutation(len(train))[:2048])
        test = test.subset(np.arange(min(len(test), 1000)))
        epochs = 1
    report.config.update(train_size=len(train), test_size=len(test), epochs=epochs)

    augment = sn.data.RandomCrop(padding=2)  # small shifts: digits and garments stay centred and upright
    loader = sn.data.BatchLoader(train, args.batch_size, shuffle=True, seed=args.seed, augment=augment)
    model = sn.nn.models.mnist_cnn(seed=args.seed, dropout=0.25)
    optimizer = sn.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = sn.optim.LinearWarmup(sn.optim.Cosine(args.lr, epochs), warmup_epochs=min(1, epochs / 2))
    history = sn.training.fit(model, loader, test, optimizer=optimizer, schedule=schedule, epochs=epochs,
                              checkpoint=report.out / "checkpoint.npz", seed=args.seed)

    final = history[-1]
    report.metric("test_accuracy", final["test_accuracy"], TARGETS[target_key])
    report.metric("test_loss", final["test_loss"])
    report.metric("train_accuracy", final["train_accuracy"])
    report.metric("images_per_second", float(np.mean([r["images_per_second"] for r in history])))
    report.metric("parameters", model.num_parameters())
    sn.save(model, report.out / "model.npz")
    report.figure(training_curves(history, f"mnist_cnn on {args.dataset}"), "training_curves.png",
                  "Loss and accuracy per epoch (test: held-out set, eval mode).")
    verdict = "reaches" if final["test_accuracy"] >= TARGETS[target_key] else "falls short of"
    report.section("Verdict", f"Test accuracy {final['test_accuracy']:.4f} on {len(test)} held-out images "
                              f"{verdict} the target {TARGETS[target_key]} ({target_key}).")
