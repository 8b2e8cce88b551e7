"""Differentiable ops on Tensors. Each op computes its forward and records, beside it, how to push a gradient
back to each of its inputs (see `scratchnet.tensor`).

Read in this order: `elementwise` (arithmetic, broadcasting), `reductions`, `shape`, `activations`, `linalg`,
`conv` (which calls the kernels), `normalization`, `losses`.
"""

from scratchnet.functional.activations import log_softmax, relu, sigmoid, softmax, softplus, tanh
from scratchnet.functional.conv import avg_pool2d, conv2d, global_avg_pool2d, max_pool2d
from scratchnet.functional.elementwise import (
    abs,
    add,
    clip,
    div,
    eq,
    exp,
    ge,
    gt,
    le,
    log,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    sqrt,
    sub,
    where,
)
from scratchnet.functional.linalg import linear, matmul
from scratchnet.functional.linf_dist import linf_dist, lp_dist
from scratchnet.functional.losses import cross_entropy, kl_div, mse, multi_margin
from scratchnet.functional.normalization import batch_norm, dropout
from scratchnet.functional.reductions import max, mean, min, sum
from scratchnet.functional.shape import concatenate, flatten, getitem, pad, reshape, stack, transpose

__all__ = [
    "abs", "add", "avg_pool2d", "batch_norm", "clip", "concatenate", "conv2d", "cross_entropy", "div", "dropout",
    "eq", "exp", "flatten", "ge", "getitem", "global_avg_pool2d", "gt", "kl_div", "le", "linear", "log",
    "linf_dist", "log_softmax", "lp_dist", "lt", "matmul", "max", "max_pool2d", "maximum", "mean", "min", "minimum",
    "mse", "mul",
    "multi_margin", "ne", "neg", "pad", "pow", "relu", "reshape", "sigmoid", "softmax", "softplus", "sqrt",
    "stack", "sub", "sum", "tanh", "transpose", "where",
]
