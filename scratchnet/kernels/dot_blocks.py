"""The register-blocked micro-kernels of the conv kernels: a fixed block of scalar dot products over one contiguous
innermost loop, the form LLVM's loop vectorizer turns into vector FMAs with every accumulator in a register
(shared/specs/kernel-performance.md, lesson 2). fastmath is limited to reassociation and FMA contraction, which the
vectorized reductions need, so results match the NumPy reference up to float rounding and inf/NaN propagate.
"""

from numba import njit

# The micro-kernel's tile: RB rows of one operand against RJ rows of the other. Eight accumulators cover the
# two FMA pipelines' latency and, with the six loaded vectors, fit AVX2's sixteen registers. A 3 x 4 tile
# (twelve accumulators and seven loads) does not: LLVM spilled two accumulators to the stack and shuffled the
# rest between registers on every iteration, which ran each pass 1.6-1.9x slower (lesson 2 of the spec).
RB, RJ = 2, 4
# One filter alone (the input gradient of a one-channel image: the transposed conv has one output channel) runs
# RC rows of R against it instead: eight sums for nine loads a step, where the RB x RJ tile would spend three of
# its four columns on padding rows of W (4x the work).
RC = 8
FASTMATH = {"reassoc", "contract"}


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile(a0, a1, b0, b1, b2, b3, n):
    """The 2 x 4 block of dot products <a_i[:n], b_j[:n]>: eight scalar sums over one contiguous loop, which
    LLVM vectorizes into eight vector accumulators. Inlined, so the views passed in cost nothing."""
    z = a0.dtype.type(0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    for k in range(n):
        u0, u1 = a0[k], a1[k]
        v0, v1, v2, v3 = b0[k], b1[k], b2[k], b3[k]
        s00 += u0 * v0
        s01 += u0 * v1
        s02 += u0 * v2
        s03 += u0 * v3
        s10 += u1 * v0
        s11 += u1 * v1
        s12 += u1 * v2
        s13 += u1 * v3
    return (s00, s01, s02, s03, s10, s11, s12, s13)


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _column(a0, a1, a2, a3, a4, a5, a6, a7, b, n):
    """The 8 x 1 block of dot products <a_i[:n], b[:n]>, for a single row b."""
    z = b.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    for k in range(n):
        v = b[k]
        s0 += a0[k] * v
        s1 += a1[k] * v
        s2 += a2[k] * v
        s3 += a3[k] * v
        s4 += a4[k] * v
        s5 += a5[k] * v
        s6 += a6[k] * v
        s7 += a7[k] * v
    return (s0, s1, s2, s3, s4, s5, s6, s7)
