"""A robust classifier can have an arbitrarily large Lipschitz constant (Liang & Huang 2021, "Large Norms of CNN
Layers Do Not Hurt Adversarial Robustness", AAAI; the theorem on robust networks; its wording and proof were not
at hand, so this is the reconstruction of shared/specs/conv-norms.md, Sec. 7).

Statement. Let the classes be separated: differently labelled points are more than 2 eps apart. Then for every
M > 0 there is a ReLU network that classifies every point of the eps-ball around every data point correctly (100%
robust accuracy at eps) and whose Lipschitz constant exceeds M. Small Lipschitz constants, and so small layer
norms, are not necessary for robustness.

Construction. (a) A robust base network: the nearest-class-distance classifier logit_k(x) = -d(x, X_k). For x in
X_k and ||x' - x|| <= eps, d(x', X_k) <= eps < r - eps <= d(x', X_j) when r > 2 eps separates the classes.
In l-inf this is a ReLU network (|t| = relu(t) + relu(-t), max(a, b) = b + relu(a - b); here written with the
l-inf-dist neuron). (b) Add A phi(x), with phi a ReLU bump of width w supported where the distance to the data
exceeds eps + w: the network is unchanged on every eps-ball, and its Lipschitz constant grows like A.

Checked twice: (1) the 1-D construction, f(x) = x + A hat(x; c, w) with hat(x) = relu(x - c + w) - 2 relu(x - c)
+ relu(x - c - w), on data X- <= -g < 0 < g <= X+, where the Lipschitz constant is exactly 1 + A and robustness is
decided exactly (a piecewise-linear function is smallest on an interval at its ends or its kinks); (2) the
nearest-class-distance network on a real MNIST subset, with an l-inf bump around a random image, where a
certificate from the network's own margins proves robustness and a pair of points proves Lipschitz > M. Both are
also attacked (PGD, APGD) and sampled. Through the NumPy kernels: on these tiny networks the Numba kernels'
thread start-up dominates.
"""

import functools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
import scratchnet.functional as F
from scratchnet import attacks, nn
from scratchnet.backend import use_backend
from scratchnet.norms import linear_linf_norm
from scratchnet.tensor import Tensor, as_tensor

LOG10_M = st.floats(-3.0, 6.0)  # M from 1e-3 to 1e6
FRACTION = st.floats(0.01, 0.99)


@pytest.fixture(autouse=True)
def numpy_kernels():
    with use_backend("numpy"):
        yield


# ---------------------------------------------------------------------------------------------- 1-D
def one_d_network(A: float, c: float, w: float) -> nn.Sequential:
    """Logits (0, f(x)) with f(x) = x + A hat(x; c, w): hidden units relu(x), relu(-x) (x = their difference)
    and the three ReLUs of the hat; class 1 (positive) iff f(x) > 0."""
    model = nn.Sequential(nn.Linear(1, 5), nn.ReLU(), nn.Linear(5, 2)).to(np.float64)
    model[0].weight.data[:] = [[1.0], [-1.0], [1.0], [1.0], [1.0]]
    model[0].bias.data[:] = [0.0, 0.0, w - c, -c, -c - w]
    model[2].weight.data[:] = [[0, 0, 0, 0, 0], [1.0, -1.0, A, -2 * A, A]]
    model[2].bias.data[:] = 0.0
    return model


def f_of(model, t) -> np.ndarray:
    """f at the points t (the positive class's logit minus the other's)."""
    z = sn.training.predict(model, np.asarray(t, dtype=np.float64).reshape(-1, 1))
    return z[:, 1] - z[:, 0]


@settings(deadline=None, max_examples=50)
@given(g=st.floats(0.01, 10.0), positives=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=5),
       negatives=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=5), eps_fraction=FRACTION,
       width_fraction=FRACTION, centre_fraction=st.floats(-1.0, 1.0), log10_m=LOG10_M)
def test_1d_network_is_robust_with_lipschitz_constant_above_m(g, positives, negatives, eps_fraction, width_fraction,
                                                              centre_fraction, log10_m):
    M = 10.0 ** log10_m
    x = np.array([g + p for p in positives] + [-g - n for n in negatives])
    y = np.array([1] * len(positives) + [0] * len(negatives))
    eps = eps_fraction * g  # the classes are 2g apart: 2 eps < 2g
    w = width_fraction * (g - eps)  # the hat lives in (-(g - eps), g - eps), outside every eps-ball
    c = centre_fraction * (g - eps - w)
    model = one_d_network(A=M, c=c, w=w)
    kinks = np.array([c - w, c, c + w])

    # Lipschitz constant, exactly: the largest |slope| between consecutive kinks (and beyond the outer ones)
    t = np.concatenate([[kinks[0] - 1.0], kinks, [kinks[-1] + 1.0]])
    lipschitz = np.max(np.abs(np.diff(f_of(model, t)) / np.diff(t)))
    assert lipschitz == pytest.approx(1.0 + M, rel=1e-9) and lipschitz > M
    assert linear_linf_norm(model[2].weight.data).value > M  # and so is the last layer's norm

    # robustness, exactly: on [x - eps, x + eps], f is smallest (times the sign) at an end or a kink inside;
    # a kink clipped into the interval is one of those points
    ends = np.stack([x - eps, x + eps], axis=1)
    points = np.concatenate([ends, np.clip(kinks[None, :], ends[:, :1], ends[:, 1:])], axis=1)
    assert np.all((f_of(model, points).reshape(points.shape) > 0) == (y == 1)[:, None])

    # and by a dense grid and by attacks
    grid = (x[:, None] + np.linspace(-eps, eps, 201)[None, :]).ravel()
    assert np.all((f_of(model, grid) > 0) == np.repeat(y == 1, 201))
    bounds = (-30.0, 30.0)
    for x_adv in (attacks.pgd(model, x[:, None], y, eps, steps=20, bounds=bounds, rng=0),
                  attacks.apgd(model, x[:, None], y, eps, steps=20, bounds=bounds, rng=0)):
        assert np.all((f_of(model, x_adv) > 0) == (y == 1))


# ---------------------------------------------------------------------------------------------- MNIST
class NearestClassNet(nn.Module):
    """logit_k(x) = -min_{x_i in X_k} ||x - x_i||_inf + A relu(w - ||x - p||_inf) [k = bump_class]: the
    nearest-class-distance network with an l-inf bump of height A w and width w around p. `prototypes` is
    [K, m, d]: m flattened images of each of the K classes."""

    def __init__(self, prototypes: np.ndarray, A: float, p: np.ndarray, w: float, bump_class: int):
        super().__init__()
        self.prototypes, self.A, self.p, self.w = prototypes, A, p, w
        self.onehot = np.eye(len(prototypes))[bump_class]

    def forward(self, x):
        x = as_tensor(x).flatten()
        K, m, d = self.prototypes.shape
        distances = F.linf_dist(x, Tensor(self.prototypes.reshape(K * m, d)))
        logits = (-distances).reshape(len(x.data), K, m).max(axis=2)
        bump = F.relu(self.w - F.linf_dist(x, Tensor(self.p[None, :])))
        return logits + self.A * bump * self.onehot


@functools.cache
def mnist_test_images() -> tuple[np.ndarray, np.ndarray]:
    """The held-out MNIST images (float64, flattened) and labels, or a visible skip when the files are missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sn.data.MnistSplitWarning)
            _, test = sn.data.mnist(download=False)
    except sn.data.DatasetNotFoundError as error:
        pytest.skip(f"MNIST files not found (set SCRATCHNET_DATA to the folder holding mnist/): {error}")
    return test.x.reshape(len(test), -1).astype(np.float64), test.y


@settings(deadline=None, max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), per_class=st.integers(1, 5), eps_fraction=FRACTION,
       width_fraction=FRACTION, bump_class=st.integers(0, 9), log10_m=LOG10_M)
def test_nearest_class_network_on_mnist_is_robust_with_lipschitz_constant_above_m(seed, per_class, eps_fraction,
                                                                                   width_fraction, bump_class,
                                                                                   log10_m):
    images, labels = mnist_test_images()
    rng = np.random.default_rng(seed)
    chosen = np.stack([rng.choice(np.flatnonzero(labels == k), per_class, replace=False) for k in range(10)])
    prototypes, x, y = images[chosen], images[chosen.ravel()], labels[chosen.ravel()]
    pairwise = np.abs(x[:, None, :] - x[None, :, :]).max(axis=2)
    r = pairwise[y[:, None] != y[None, :]].min()  # the separation of this subset in l-inf
    eps = eps_fraction * r / 2
    p = rng.random(x.shape[1])  # the bump's centre, a random image: about 1 away from every digit in l-inf
    w = width_fraction * min(0.5, np.abs(x - p).max(axis=1).min() - eps)
    M = 10.0 ** log10_m
    model = NearestClassNet(prototypes, M + 2.0, p, w, bump_class)

    # Lipschitz constant > M (from (R^784, l-inf) to the logits in l-inf): moving one pixel of p by w lowers the
    # bump by A w and the distance logit by at most w, a difference quotient of at least A - 1 = M + 1
    q = p.copy()
    q[0] += w if p[0] < 0.5 else -w
    z = sn.training.predict(model, np.stack([p, q]))
    assert np.max(np.abs(z[0] - z[1])) / w > M

    # robustness, exactly: the bump is 0 on every eps-ball (||x' - p|| >= ||x - p|| - eps >= w) and each distance
    # logit moves by at most eps there, so the margin at x minus 2 eps bounds the margin on the whole ball
    assert np.abs(x - p).max(axis=1).min() - eps >= w
    logits = sn.training.predict(model, x)
    others = np.where(np.eye(10, dtype=bool)[y], -np.inf, logits)
    assert np.all(logits[np.arange(len(y)), y] - others.max(axis=1) - 2 * eps > 0)

    # and by sampling corners of the ball and by attacks
    corners = np.clip(x[:, None, :] + eps * rng.choice([-1.0, 1.0], (len(x), 8, x.shape[1])), 0.0, 1.0)
    assert np.all(sn.training.predict(model, corners.reshape(-1, x.shape[1])).argmax(axis=1) == np.repeat(y, 8))
    for x_adv in (attacks.pgd(model, x, y, eps, steps=20, rng=seed),
                  attacks.apgd(model, x, y, eps, steps=20, rng=seed)):
        assert np.all(sn.training.predict(model, x_adv).argmax(axis=1) == y)
