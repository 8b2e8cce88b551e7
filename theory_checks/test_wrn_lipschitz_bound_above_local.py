"""The residual layer-norm bound is never below Huang et al.'s measured local Lipschitz constant (Huang et al.
2021, NeurIPS, Section 4 and their code's `local_lip`; spec A4, A6).

Statement. In eval mode a WideResNet is a composition of convolutions, BatchNorm (a diagonal affine map), ReLU
(1-Lipschitz in every coordinate), residual sums and a global average pool (each output a mean: 1-Lipschitz in
l-inf). For the identity block x + g(x), ||Delta out||_inf <= (1 + Lip(g)) ||Delta x||_inf; for the projection
block, ||BN1|| (Lip(conv branch) + ||shortcut||). The head maps l-inf to l1 with ||BN|| ||W_fc||_{inf->1}.
Multiplying gives B with ||f(x) - f(x')||_1 <= B ||x - x'||_inf for every pair, so the paper's metric, the mean
of these ratios at PGD examples, is at most B.

Checked on tiny nets whose BatchNorm layers carry random scales and running statistics (so that they are not
the identity of the initialization), in float64, at PGD-20 examples, at random pairs, and at the pair from an
ascent on ||f(x) - f(x')||_1 itself. NumPy kernels.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.backend import use_backend
from scratchnet.lipschitz import local_lipschitz, residual_lipschitz_bound
from scratchnet.nn import BatchNorm2d, WideResNet


def random_net(depths, widths, seed) -> WideResNet:
    model = WideResNet(depths, widths, num_classes=4, in_channels=1, base_channels=2, rng=seed).to(np.float64)
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            m.weight.data[:] = rng.uniform(-2, 2, m.num_features)
            m.bias.data[:] = rng.standard_normal(m.num_features)
            m.running_mean[:] = rng.standard_normal(m.num_features)
            m.running_var[:] = rng.uniform(0.05, 3, m.num_features)
    return model.eval()


def l1_ascent(model, x, eps, steps=30) -> np.ndarray:
    """x' in the eps-ball that (locally) maximizes ||f(x) - f(x')||_1: sign-gradient ascent on it."""
    with sn.no_grad():
        fx = model(x).data
    x_adv = x + eps * np.random.default_rng(0).choice([-1.0, 1.0], x.shape)
    for _ in range(steps):
        t = sn.Tensor(x_adv, requires_grad=True)
        sn.functional.abs(model(t) - fx).sum().backward()
        x_adv = np.clip(x_adv + 0.25 * eps * np.sign(t.grad), x - eps, x + eps)
    return x_adv


nets = st.tuples(st.tuples(*[st.integers(1, 2)] * 3), st.tuples(*[st.integers(1, 2)] * 3), st.integers(0, 2**20))


@settings(deadline=None, max_examples=15)
@given(nets, st.sampled_from([1e-3, 0.03, 0.3]))
def test_bound_is_above_the_local_lipschitz_metric(config, eps):
    depths, widths, seed = config
    model = random_net(depths, widths, seed)
    rng = np.random.default_rng(seed)
    x = rng.random((6, 1, 8, 8))
    y = rng.integers(0, 4, 6)
    with use_backend("numpy"):
        bound = residual_lipschitz_bound(model, (1, 8, 8))
        pgd = sn.attacks.pgd(model, x, y, eps, steps=20, step_size=eps / 10, rng=seed)
        pgd = np.where(np.abs(pgd - x).reshape(6, -1).max(axis=1)[:, None, None, None] > 0, pgd, x + eps)
        random = np.clip(x + rng.uniform(-eps, eps, x.shape), 0, 1)
        for x_adv in (pgd, random, l1_ascent(model, x, eps)):
            assert local_lipschitz(model, x, x_adv) <= bound * (1 + 1e-9)
