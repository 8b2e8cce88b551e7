"""One training epoch of the MNIST CNN (scratchnet.nn.models.mnist_cnn): scratchnet against the same network,
initialization and SGD step in torch, on 2,048 random 28x28 images in batches of 128.

"ours" is the whole engine (autograd, Numba kernels, the optimizer); "reference" is the same engine with the
NumPy reference kernels (backend "numpy"), which shows what the Numba kernels buy inside a real step. Before
timing, one epoch of each from the same start, in float64, checks that the two trainings are the same
computation: every batch's loss and every weight after the epoch agree with torch's ("close": they agree to
1e-15, while a 0.1% error in one weight gradient moves the weights by 3% of their size; in float32, rounding
alone moves them by 3e-4, and the losses alone let a 3% gradient error pass).
"""

import numpy as np

import scratchnet as sn
from benchmarks.timing import agreement, best_times, row
from scratchnet import functional as F
from scratchnet.nn.models import mnist_cnn

DESCRIPTION = "one epoch of the MNIST CNN: forward, cross-entropy, backward and an SGD step per batch"

IMAGES, BATCH, LR = 2048, 128, 0.05


def _our_epoch(x, y, backend, model=None):
    model = mnist_cnn(seed=0) if model is None else model
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


def _torch_epoch(torch, x, y, model=None):
    nn = torch.nn
    model = torch_mnist_cnn(torch) if model is None else model
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
        ours, theirs, x64 = mnist_cnn(seed=0).to(np.float64), torch_mnist_cnn(torch).double(), x.astype(np.float64)
        losses = (np.array(_our_epoch(x64, y, "numba", ours)()), np.array(_torch_epoch(torch, x64, y, theirs)()))
        ours, theirs = ours.parameters(), list(theirs.parameters())
        weights = [(p.data, q.detach().numpy()) for p, q in zip(ours, theirs, strict=False)]
        results = agreement([losses, *weights], exact=False) if len(ours) == len(theirs) else "MISMATCH"
    times = best_times({"ours": _our_epoch(x, y, "numba"), "reference": _our_epoch(x, y, "numpy"),
                        "torch": _torch_epoch(torch, x, y) if torch is not None else None}, max(1, repeat // 2))
    shape = f"{IMAGES} images [1,28,28], batch {BATCH}, float32, SGD momentum 0.9"
    return [row("mnist_cnn training epoch", shape, times) | {"torch_results": results}]
