"""One training epoch of the MNIST CNN (scratchnet.nn.models.mnist_cnn): scratchnet against the same network,
initialization and SGD step in torch, on 2,048 random 28x28 images in batches of 128.

"ours" is the whole engine (autograd, Numba kernels, the optimizer); "reference" is the same engine with the
NumPy reference kernels (backend "numpy"), which shows what the Numba kernels buy inside a real step. Before
timing, one epoch of each from the same start checks that the two trainings are the same computation: every
batch's loss agrees with torch's ("close"), and each loss depends on all the weights the steps before produced.
"""

import numpy as np

import scratchnet as sn
from benchmarks.timing import agreement, best_times, row
from scratchnet import functional as F
from scratchnet.nn.models import mnist_cnn

DESCRIPTION = "one epoch of the MNIST CNN: forward, cross-entropy, backward and an SGD step per batch"

IMAGES, BATCH, LR = 2048, 128, 0.05


def _our_epoch(x, y, backend):
    model = mnist_cnn(seed=0)
    optimizer = sn.optim.SGD(model.parameters(), lr=LR, momentum=0.9)

    def epoch():
        losses = []
        with sn.backend.use_backend(backend):
            for i in range(0, IMAGES, BATCH):
                loss = F.cross_entropy(model(x[i:i + BATCH]), y[i:i + BATCH])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.data))
        return losses

    return epoch


def torch_mnist_cnn(torch):
    """mnist_cnn(seed=0) rebuilt in torch with the same weights."""
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 14 * 14, 128), nn.ReLU(), nn.Linear(128, 10))
    with torch.no_grad():
        for theirs, ours in zip(model.parameters(), mnist_cnn(seed=0).parameters(), strict=True):
            theirs.copy_(torch.from_numpy(ours.data))
    return model


def _torch_epoch(torch, x, y):
    nn = torch.nn
    model = torch_mnist_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def epoch():
        losses = []
        for i in range(0, IMAGES, BATCH):
            loss = nn.functional.cross_entropy(model(xt[i:i + BATCH]), yt[i:i + BATCH])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    return epoch


def run(repeat: int, torch=None) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.random((IMAGES, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, IMAGES)
    results = None
    if torch is not None:
        results = agreement([(np.array(_our_epoch(x, y, "numba")()), np.array(_torch_epoch(torch, x, y)()))],
                            exact=False)
    times = best_times({"ours": _our_epoch(x, y, "numba"), "reference": _our_epoch(x, y, "numpy"),
                        "torch": _torch_epoch(torch, x, y) if torch is not None else None}, max(1, repeat // 2))
    shape = f"{IMAGES} images [1,28,28], batch {BATCH}, float32, SGD momentum 0.9"
    return [row("mnist_cnn training epoch", shape, times) | {"torch_results": results}]
