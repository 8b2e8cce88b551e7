"""A 20-step l-inf PGD (eps 0.3, step 0.01, uniform random start) on 256 28x28 images against the MNIST CNN:
scratchnet's `attacks.pgd` against the same attack written in torch, with the same weights, in eval mode and
differentiating the input only. "reference" is `attacks.pgd` on the NumPy reference kernels. The random starts
differ (two generators), so before timing the check is on what every step follows: the per-example loss and its
gradient with respect to the input at the clean images, and the whole 20-step attack from the clean images
without a random start (the sign steps, the projection and the clipping), ours against torch's ("close"; the
final points agree bit for bit). The check runs in float64: in float32 a few of the 256 images have a ReLU or
max-pool decision within rounding distance, which the two libraries' sums in different orders then take
differently, sending part of the gradient another way.
"""

import numpy as np

import scratchnet as sn
from benchmarks.timing import agreement, best_times, row
from benchmarks.training import torch_mnist_cnn
from scratchnet import attacks
from scratchnet.nn.models import mnist_cnn

DESCRIPTION = "20-step l-inf PGD on 256 MNIST-sized images against the MNIST CNN"

IMAGES, STEPS, EPS, STEP_SIZE = 256, 20, 0.3, 0.01


def _ours(model, x, y, backend):
    def attack():
        with sn.backend.use_backend(backend):
            attacks.pgd(model, x, y, EPS, steps=STEPS, step_size=STEP_SIZE, rng=0)

    return attack


def _torch_pgd(torch, x, y, random_start=True, model=None):
    model = torch_mnist_cnn(torch).eval() if model is None else model
    for p in model.parameters():
        p.requires_grad_(False)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    cross_entropy = torch.nn.functional.cross_entropy

    def attack():
        x_adv = xt.clone()
        if random_start:
            x_adv = (xt + torch.empty_like(xt).uniform_(-EPS, EPS, generator=generator)).clamp(0, 1)
        for _ in range(STEPS):
            x_adv.requires_grad_(True)
            (g,) = torch.autograd.grad(cross_entropy(model(x_adv), yt, reduction="sum"), [x_adv])
            with torch.no_grad():
                x_adv = torch.min(torch.max(x_adv + STEP_SIZE * g.sign(), xt - EPS), xt + EPS).clamp(0, 1)
        return x_adv

    return attack


def _torch_results(torch, x, y):
    x = x.astype(np.float64)
    ours = mnist_cnn(seed=0).eval().to(np.float64)
    with sn.backend.use_backend("numba"):  # the kernels timed as ours, whatever --backend made active
        losses, g, _ = attacks.loss_and_gradient(ours, x, attacks.attack_loss("ce", y))
        x_adv = attacks.pgd(ours, x, y, EPS, steps=STEPS, step_size=STEP_SIZE, random_start=False)
    xt = torch.from_numpy(x).requires_grad_(True)
    model = torch_mnist_cnn(torch).double().eval()
    theirs = torch.nn.functional.cross_entropy(model(xt), torch.from_numpy(y), reduction="none")
    (gt,) = torch.autograd.grad(theirs.sum(), [xt])
    return agreement([(losses, theirs), (g, gt), (x_adv, _torch_pgd(torch, x, y, False, model)())], exact=False)


def run(repeat: int, torch=None) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.random((IMAGES, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, IMAGES)
    model = mnist_cnn(seed=0).eval()
    results = _torch_results(torch, x, y) if torch is not None else None
    times = best_times({"ours": _ours(model, x, y, "numba"), "reference": _ours(model, x, y, "numpy"),
                        "torch": _torch_pgd(torch, x, y) if torch is not None else None}, max(1, repeat // 2))
    shape = f"{IMAGES} images [1,28,28], {STEPS} steps, eps {EPS}, float32"
    return [row("pgd-20 l-inf, mnist_cnn", shape, times) | {"torch_results": results}]
