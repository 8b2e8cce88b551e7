"""The residual layer-norm bound on a wide ResNet's Lipschitz constant grows with the depth and the width of every
stage at initialization (Huang et al. 2021, NeurIPS, Section 4, in the form of spec A6: a standard bound, not the
paper's theorem, which we could not read).

Statement. For a WideResNet in eval mode, B = ||stem|| prod_blocks L_block ||BN|| ||W_fc||_{inf->1}
(`scratchnet.lipschitz.residual_lipschitz_bound`, l-inf norms). (i) Depth: one more block in stage i inserts a
factor L = 1 + ||BN1|| ||conv1|| ||BN2|| ||conv2|| >= 1 and leaves every other layer's weights unchanged (each layer
draws from its own seeded stream), so B rises; at the reference init N(0, 2 / (9 C)) the l-inf norm of a C -> C
conv is about 6 C / sqrt(pi C), so the new factor is about 1 + 11.5 C, far above 1. (With paired streams the deeper
bound is the shallower one times that one factor, which the depth check asserts: it confirms the factor and
the pairing, the stand-in for the paper's claim that spec A6 allows.) (ii) Width: doubling W_i scales
each identity block of stage i by about 2 (its factor ~ 11.5 C), the next stage's entry block (its conv1 has fan-in
C) or, for the last stage, the head's ||W_fc||_{inf->1} ~ sqrt(C), by sqrt(2) or more; the stage's own entry block
stays about the same (~ 11.5 C_in). So B rises in expectation; single draws of tiny layers are noisy, so the width
claim is checked on the mean of log B over paired draws.

Checked on tiny nets (depths 1-2, widths 1-3, base 4 or 8 channels, 8x8 one-channel inputs), NumPy kernels.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.backend import use_backend
from scratchnet.lipschitz import lipschitz_bound_factors, residual_lipschitz_bound
from scratchnet.nn import WideResNet

SEEDS = 3  # paired draws averaged for the width claim

configs = st.tuples(st.tuples(*[st.integers(1, 2)] * 3), st.tuples(*[st.integers(1, 3)] * 3),
                    st.sampled_from([4, 8]), st.integers(0, 2), st.integers(0, 2**20))


def log_bound(depths, widths, base, seed) -> float:
    model = WideResNet(depths, widths, in_channels=1, base_channels=base, rng=seed)
    with use_backend("numpy"):
        return float(np.log(residual_lipschitz_bound(model, (1, 8, 8))))


@settings(deadline=None, max_examples=25)
@given(configs)
def test_one_more_block_in_any_stage_raises_the_bound(config):
    depths, widths, base, stage, seed = config
    deeper = tuple(d + (i == stage) for i, d in enumerate(depths))
    assert log_bound(deeper, widths, base, seed) > log_bound(depths, widths, base, seed) + np.log(2)
    # by exactly the new block's factor: every other layer keeps its weights (paired streams)
    model = WideResNet(deeper, widths, in_channels=1, base_channels=base, rng=seed)
    with use_backend("numpy"):
        factors = dict(lipschitz_bound_factors(model, (1, 8, 8)))
    new_block = sum(deeper[: stage + 1]) - 1  # the last block of the stage: the one the shallower net lacks
    np.testing.assert_allclose(log_bound(deeper, widths, base, seed) - log_bound(depths, widths, base, seed),
                               np.log(factors[f"blocks.{new_block}"]), rtol=1e-12)


@settings(deadline=None, max_examples=12)
@given(configs)
def test_doubling_the_width_of_any_stage_raises_the_bound_on_average(config):
    depths, widths, base, stage, seed = config
    wider = tuple(w * (1 + (i == stage)) for i, w in enumerate(widths))
    gain = np.mean([log_bound(depths, wider, base, seed + s) - log_bound(depths, widths, base, seed + s)
                    for s in range(SEEDS)])
    # the least predicted rise is one factor sqrt(2) (a one-block stage: the next entry block or the head),
    # a log-gain of 0.35; the mean over SEEDS draws was at least 0.2 on 150 configurations
    assert gain > 0.1, gain
