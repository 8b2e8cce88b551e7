"""Feature purification (Allen-Zhu & Li 2021, "Feature Purification: How Adversarial Training Performs Robust Deep
Learning", FOCS 2021): the claims of spec sections 3-4 (shared/specs/feature-purification.md), checked on the
two-layer symmetric-ReLU network in the sparse-coding model x = M z + xi, y = sign(<w*, z>).

Statements (tau = 0.3 in l2 and 0.42 / sqrt(d) in l-inf; accuracy under PGD-20; medians over alive neurons):
1. T1, clean training: from a small random init, online SGD on the logistic loss reaches high clean accuracy,
   yet PGD at radius tau brings it low.
2. T2, adversarial training: FGM adversarial training at tau started from the clean weights recovers much higher
   PGD accuracy at the same tau (l2 and l-inf) while keeping the clean accuracy.
3. Purification: the clean neurons are impure (an atom plus a dense mixture), the adversarially trained ones are
   nearly pure, their residual shrinks, and purity rises during the adversarial phase.
4. The principle: w_i = beta_i w_i' + v_i with ||beta_i w_i'|| > ||v_i||; clean and adversarial weights are highly
   correlated with each other, and both much less with the init.
5. The removed part V = W_clean - diag(beta) W_adv has one dominant direction, and it is the dense direction
   u = M w* / ||w*||. (Not close to rank one at this scale: the top singular value carries 12-14% of V's energy,
   three times a Gaussian matrix's of the same shape.)
6. T3, lower bound: linear classifiers are not robust at tau, neither M w* (the best clean one) nor a linear
   classifier trained on the exact worst-case loss at tau.

Five (d, seed) pairs of moderate size (d = 64 and 81, k = 3, m = 2d, a fifth of the spec's steps; two seconds a
run, shared between the checks). The thresholds are the spec's (section 4, for d = 200 and the full recipe) where
this scale meets them with a margin, and otherwise set below the range measured over the five pairs, the
shortfall stated beside them; the spec's own d = 200 numbers (section 7) are reproduced by
`python -m demos feature_purification`.
"""

import functools

import numpy as np
import pytest

from scratchnet import purification as P
from scratchnet.data import sparse_coding

POOL = [(64, 0), (64, 1), (81, 2), (64, 3), (81, 4)]
RECIPE = P.Recipe(init=0.01, batch=256, clean_steps=800, adv_steps=400, threshold_samples=5000)
configs = pytest.mark.parametrize("config", POOL, ids=[f"d{d}-seed{seed}" for d, seed in POOL])


@functools.cache
def experiment(d: int, seed: int) -> dict:
    """One clean-then-adversarial run and every number the checks need."""
    data = sparse_coding(d=d, k=3, seed=seed)
    run = P.purify(data, RECIPE, seed=seed, record_every=100, record_size=200)
    x, y = data.sample(1000, np.random.default_rng([seed, 1]))
    tau_inf = 0.42 / np.sqrt(d)
    out = {"history": run.history, **P.comparison_metrics(run.W_init, run.clean.W, run.adv.W, data),
           "majority": max(np.mean(y > 0), np.mean(y < 0))}  # what a constant, perfectly robust, classifier scores
    keep = P.alive(run.clean.W) & P.alive(run.adv.W)
    out["removed_sigma"] = P.removed_direction(run.clean.W[keep], run.adv.W[keep])[1]
    out["gaussian_sigma"] = np.linalg.svd(np.random.default_rng(seed).standard_normal((int(keep.sum()), d)),
                                          compute_uv=False)
    linear_adv = P.train_linear(data, 300, [seed, 2], tau=0.3, batch=256)
    nets = {"clean": run.clean, "adv": run.adv, "linear": P.linear_network(data.M @ data.w_star),
            "linear_adv": linear_adv}
    for name, net in nets.items():
        out[f"{name}_accuracy"] = P.accuracy(net, x, y)
        out[f"{name}_l2"] = P.accuracy(net, x, y, 0.3, "2")
        out[f"{name}_linf"] = P.accuracy(net, x, y, tau_inf, "inf")
    for name, net in (("clean", run.clean), ("adv", run.adv)):
        out.update({f"{name}_{key}": value for key, value in P.weight_metrics(net.W, data).items()})
    return out


@configs
def test_clean_training_is_accurate_but_not_robust(config):
    r = experiment(*config)
    assert r["clean_accuracy"] >= 0.78  # measured 0.81-0.86 (spec 0.9 at d = 200; the linear M w* gets 0.94-0.96)
    assert r["clean_l2"] <= min(0.45, r["majority"] - 0.05)  # measured 0.37-0.43 (spec 0.4); a constant gets 0.51-0.54
    assert r["clean_linf"] <= 0.42  # measured 0.33-0.38 (spec 0.35)
    assert r["clean_accuracy"] - r["clean_l2"] >= 0.3  # measured 0.40-0.45


@configs
def test_adversarial_training_from_the_clean_weights_recovers_robustness_and_keeps_accuracy(config):
    r = experiment(*config)
    assert r["adv_l2"] - r["clean_l2"] >= 0.15  # measured 0.20-0.27 (spec 0.3 at d = 200)
    assert r["adv_linf"] - r["clean_linf"] >= 0.18  # measured 0.21-0.29 (trained against l2, attacked in l-inf)
    assert r["adv_accuracy"] >= r["clean_accuracy"] - 0.03  # spec; measured +0.002 to +0.015


@configs
def test_adversarial_training_purifies_the_neurons(config):
    r = experiment(*config)
    assert r["clean_purity"] <= 0.82  # measured 0.785-0.799 (spec 0.8)
    assert r["adv_purity"] >= 0.9  # spec; measured 0.92-0.94
    assert r["adv_residual"] <= 0.7 * r["clean_residual"]  # measured 0.35-0.39 against 0.60-0.62 (spec: halved)
    adversarial = [h["purity"] for h in r["history"] if h["phase"] == "adversarial"]
    assert adversarial[-1] >= adversarial[0] + 0.05  # measured 0.83-0.85 -> 0.92-0.94
    assert np.all(np.diff(adversarial) > 0)  # it rises at every record, not only at the end (by 0.02 or more)


@configs
def test_clean_and_adversarial_weights_share_their_features_not_the_init(config):
    r = experiment(*config)
    assert r["cos_clean_adv"] >= 0.9  # measured 0.95 (spec 0.6)
    assert r["ratio"] > 2.5  # ||beta w'|| / ||v||, measured 3.0-3.2 (spec 1)
    assert max(r["cos_clean_init"], r["cos_adv_init"]) <= 0.42  # measured 0.32-0.37 (spec 0.35)
    assert r["cos_clean_adv"] - r["cos_clean_init"] >= 0.5  # measured 0.58-0.62


@configs
def test_the_removed_part_has_one_dominant_direction_the_dense_one(config):
    r = experiment(*config)
    assert r["removed_alignment"] >= 0.8  # |cos(v_1, u)|, spec; measured 0.91-0.96
    sigma, gaussian = r["removed_sigma"], r["gaussian_sigma"]
    share, gaussian_share = sigma[0] ** 2 / np.sum(sigma**2), gaussian[0] ** 2 / np.sum(gaussian**2)
    assert share >= 2 * gaussian_share  # measured 0.12-0.14 against 0.033-0.045
    assert sigma[0] / sigma[1] >= 1.15 and gaussian[0] / gaussian[1] < 1.1  # measured 1.30-1.67 against 1.02-1.04


@configs
def test_linear_classifiers_are_not_robust_at_tau(config):
    r = experiment(*config)
    assert r["linear_accuracy"] >= 0.9  # M w* is an accurate classifier ...
    assert r["linear_l2"] <= 0.2 and r["linear_linf"] <= 0.15  # ... and not robust: 0.10-0.16, 0.08-0.12 (spec 0.15)
    assert r["linear_adv_l2"] <= 0.2  # neither is the linear classifier trained for tau: measured 0.10-0.15
    assert r["adv_l2"] >= r["linear_adv_l2"] + 0.4  # while the network is: measured +0.48 to +0.54
