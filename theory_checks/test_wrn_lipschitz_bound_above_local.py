"""The residual layer-norm bound is never below Huang et al.'s measured local Lipschitz constant (Huang et al.
2021, NeurIPS, Section 4 and their code's `local_lip`; spec A4, A6).

Statement. In eval mode a WideResNet is a composition of convolutions, BatchNorm (a diagonal affine map), ReLU
(1-Lipschitz in every coordinate), residual sums and a global average pool (each output a mean: 1-Lipschitz in l-inf).
For the identity block x + g(x), ||Delta out||_inf <= (1 + Lip(g)) ||Delta x||_inf; for the projection block, ||BN1||
(Lip(conv branch) + ||shortcut||), or ||BN1|| Lip(conv branch) + ||shortcut|| where the shortcut reads the block's raw
input (a stride change at an equal channel count). The head maps l-inf to l1 with ||BN|| ||W_fc||_{inf->1}. Multiplying
gives B with ||f(x) - f(x')||_1 <= B ||x - x'||_inf for every pair, so the paper's metric, the mean of these ratios at
PGD examples, is at most B.

Checked on tiny nets whose BatchNorm layers carry random scales and running statistics (so that they are not
the identity of the initialization), in float64, at PGD-20 examples, at random pairs, and at the pair from an
ascent on ||f(x) - f(x')||_1 itself. The product is loose (10^8 to 10^12 times the measured ratio on these nets),
so that check alone could not notice a factor too small; each factor is therefore also checked against an
ascent on its own piece (stem, each block, head) at the activations that reach it, and every factor is attained
exactly by a constructed net that is linear with nonnegative entries on positive inputs. NumPy kernels.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
import scratchnet.functional as F
from scratchnet.backend import use_backend
from scratchnet.lipschitz import lipschitz_bound_factors, local_lipschitz, residual_lipschitz_bound
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


def piece_ascent(piece, z, eps, output_norm, steps=30) -> float:
    """The largest ||piece(z') - piece(z)|| / ||z' - z||_inf found by sign-gradient ascent on the output change
    (its l-inf norm: the largest coordinate, or its l1 norm) over the eps-ball around each row of z."""
    with sn.no_grad():
        at_z = piece(z).data
    z_adv = z + eps * np.random.default_rng(1).choice([-1.0, 1.0], z.shape)
    for _ in range(steps):
        t = sn.Tensor(z_adv, requires_grad=True)
        change = F.abs(piece(t) - at_z).reshape(len(z), -1)
        (change.max(axis=1) if output_norm == "inf" else change).sum().backward()
        z_adv = np.clip(z_adv + 0.25 * eps * np.sign(t.grad), z - eps, z + eps)
    with sn.no_grad():
        change = np.abs(piece(z_adv).data - at_z).reshape(len(z), -1)
    size = change.max(axis=1) if output_norm == "inf" else change.sum(axis=1)
    return float(np.max(size / np.abs(z_adv - z).reshape(len(z), -1).max(axis=1)))


@settings(deadline=None, max_examples=10)
@given(nets, st.sampled_from([1e-3, 0.1]))
def test_each_factor_bounds_its_own_piece_and_the_stems_is_attained(config, eps):
    depths, widths, seed = config
    model = random_net(depths, widths, seed)
    x = np.random.default_rng(seed).random((4, 1, 8, 8))
    with use_backend("numpy"):
        factors = dict(lipschitz_bound_factors(model, (1, 8, 8)))
        z = x
        pieces = [("stem", model.stem)] + [(f"blocks.{i}", block) for i, block in enumerate(model.blocks)]
        for name, piece in pieces:
            assert piece_ascent(piece, z, eps, "inf") <= factors[name] * (1 + 1e-9), name
            with sn.no_grad():
                z = piece(z).data
        head = lambda t: model.fc(model.pool(F.relu(model.bn(t))))  # noqa: E731
        assert piece_ascent(head, z, eps, "l1") <= factors["head"] * (1 + 1e-9)
        # the stem is linear: its l-inf norm is the largest l1 norm of a filter (an interior output reads all
        # taps), attained by the sign pattern of that filter around an interior position
        w = model.stem.weight.data
        f = int(np.argmax(np.abs(w).sum(axis=(1, 2, 3))))
        delta = np.zeros((1, 1, 8, 8))
        delta[0, :, 3:6, 3:6] = eps * np.sign(w[f])
        with sn.no_grad():
            reached = abs(model.stem(delta).data[0, f, 4, 4]) / eps
        np.testing.assert_allclose(reached, factors["stem"], rtol=1e-12)


def test_every_factor_is_attained_by_a_net_that_is_linear_on_positive_inputs():
    """Constant positive kernels, BatchNorm at scale 1 with a positive shift and positive classifier weights keep
    every activation positive, so every ReLU is active and each piece is a linear map with nonnegative entries:
    its l-inf operator norm is its largest row sum, reached by an all-ones step at an interior position. There
    each factor is exact: 1 + s ||conv1|| s ||conv2|| for an identity block (the '1 +' is the shortcut's),
    s (s ||conv1|| ||conv2|| + ||shortcut||) for a projection of the activated input, s^2 ||conv1|| ||conv2|| +
    ||shortcut|| for one of the raw input, s ||W_fc||_{inf -> 1} for the head, with every BatchNorm at scale s = 1.5
    (at 1 the two projections' factors would coincide)."""
    model = WideResNet((2, 1), (2, 1), num_classes=3, in_channels=1, base_channels=2, rng=0).to(np.float64).eval()
    shortcuts = [None if b.shortcut is None else ("a" if b.shortcut_activated else "x") for b in model.blocks]
    assert shortcuts == ["a", None, "x"]  # 2 -> 4 channels; 4 -> 4; 4 -> 4 at stride 2
    for value, m in enumerate(model.modules()):
        if isinstance(m, sn.nn.Conv2d):
            m.weight.data[:] = 0.05 * (1 + value % 4)
        if isinstance(m, BatchNorm2d):
            m.weight.data[:], m.bias.data[:], m.running_mean[:], m.running_var[:] = 1.5, 1.0, 0.0, 1 - m.eps
    model.fc.weight.data[:] = np.random.default_rng(0).uniform(0.1, 1.0, model.fc.weight.shape)
    z, eps = np.random.default_rng(1).uniform(0.5, 1.0, (1, 1, 12, 12)), 0.1
    with use_backend("numpy"), sn.no_grad():
        factors = dict(lipschitz_bound_factors(model, (1, 12, 12)))
        pieces = [("stem", model.stem)] + [(f"blocks.{i}", block) for i, block in enumerate(model.blocks)]
        for name, piece in pieces:
            reached = np.abs(piece(z + eps).data - piece(z).data).max() / eps
            np.testing.assert_allclose(reached, factors[name], rtol=1e-9, err_msg=name)
            z = piece(z).data
        head = lambda t: model.fc(model.pool(F.relu(model.bn(t))))  # noqa: E731
        reached = np.abs(head(z + eps).data - head(z).data).sum() / eps
        np.testing.assert_allclose(reached, factors["head"], rtol=1e-9)
