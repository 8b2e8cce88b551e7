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
5. The removed part V = W_clean - diag(beta) W_adv is close to rank one and its top direction is the dense
   direction u = M w* / ||w*||.
6. T3, lower bound: linear classifiers are not robust at tau, neither M w* (the best clean one) nor a linear
   classifier trained on the exact worst-case loss at tau.

Hypothesis draws (d, seed) from a small pool of moderate sizes (d = 64 and 81, k = 3, m = 2d, a fifth of the
spec's steps): each run takes seconds, and runs are shared between the checks. The thresholds are set from what
the model shows over five (d, seed) pairs, with a margin (measured ranges in the comments); the spec's own
d = 200 numbers (section 7) are reproduced by `python -m demos feature_purification`.
"""

import functools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import purification as P
from scratchnet.data import sparse_coding

POOL = [(64, 0), (64, 1), (81, 2)]
RECIPE = P.Recipe(init=0.01, batch=256, clean_steps=800, adv_steps=400, threshold_samples=5000)
configs = st.sampled_from(POOL)
checks = settings(deadline=None, max_examples=len(POOL), database=None)


@functools.cache
def experiment(d: int, seed: int) -> dict:
    """One clean-then-adversarial run and every number the checks need."""
    data = sparse_coding(d=d, k=3, seed=seed)
    run = P.purify(data, RECIPE, seed=seed, record_every=100, record_size=200)
    x, y = data.sample(1000, np.random.default_rng([seed, 1]))
    tau_inf = 0.42 / np.sqrt(d)
    out = {"history": run.history, **P.comparison_metrics(run.W_init, run.clean.W, run.adv.W, data)}
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


@checks
@given(configs)
def test_clean_training_is_accurate_but_not_robust(config):
    r = experiment(*config)
    assert r["clean_accuracy"] >= 0.78  # measured 0.81-0.86 (the linear M w* gets 0.94-0.96)
    assert r["clean_l2"] <= 0.52  # measured 0.37-0.43
    assert r["clean_linf"] <= 0.48  # measured 0.33-0.38


@checks
@given(configs)
def test_adversarial_training_from_the_clean_weights_recovers_robustness_and_keeps_accuracy(config):
    r = experiment(*config)
    assert r["adv_l2"] - r["clean_l2"] >= 0.12  # measured 0.19-0.27
    assert r["adv_linf"] - r["clean_linf"] >= 0.15  # measured 0.21-0.29 (trained against l2, attacked in l-inf)
    assert r["adv_accuracy"] >= r["clean_accuracy"] - 0.03  # measured 0.00 to +0.015


@checks
@given(configs)
def test_adversarial_training_purifies_the_neurons(config):
    r = experiment(*config)
    assert r["clean_purity"] <= 0.86  # measured 0.78-0.80
    assert r["adv_purity"] >= 0.88  # measured 0.92-0.94
    assert r["adv_residual"] <= 0.75 * r["clean_residual"]  # measured 0.35-0.39 against 0.60-0.62
    adversarial = [h["purity"] for h in r["history"] if h["phase"] == "adversarial"]
    assert adversarial[-1] >= adversarial[0] + 0.05  # measured 0.83-0.85 -> 0.92-0.94
    assert np.all(np.diff(adversarial) > -0.02)  # it rises along the way, not only at the end


@checks
@given(configs)
def test_clean_and_adversarial_weights_share_their_features_not_the_init(config):
    r = experiment(*config)
    assert r["cos_clean_adv"] >= 0.85  # measured 0.95
    assert r["ratio"] > 1.5  # ||beta w'|| / ||v||, measured 3.0-3.2
    assert max(r["cos_clean_init"], r["cos_adv_init"]) <= 0.5  # measured 0.32-0.37
    assert r["cos_clean_adv"] - r["cos_clean_init"] >= 0.4


@checks
@given(configs)
def test_the_removed_part_is_nearly_rank_one_along_the_dense_direction(config):
    r = experiment(*config)
    assert r["removed_alignment"] >= 0.75  # |cos(v_1, u)|, measured 0.91-0.96
    # sigma_1 / sum sigma, measured 0.046-0.057; about 0.026 for a Gaussian V of this shape (Marchenko-Pastur)
    assert r["removed_top_share"] >= 0.035


@checks
@given(configs)
def test_linear_classifiers_are_not_robust_at_tau(config):
    r = experiment(*config)
    assert r["linear_accuracy"] >= 0.9  # M w* is an accurate classifier ...
    assert r["linear_l2"] <= 0.25 and r["linear_linf"] <= 0.25  # ... and not robust: measured 0.08-0.16
    assert r["linear_adv_l2"] <= 0.25  # neither is the linear classifier trained for tau: measured 0.10-0.15
    assert r["adv_l2"] >= r["linear_adv_l2"] + 0.3  # while the network is: measured +0.45 or more
