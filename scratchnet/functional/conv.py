"""2-D convolution and pooling over NCHW tensors; the arithmetic is in the kernels (`scratchnet.kernels`).

The backward of a convolution is two more convolutions: the input gradient is the transposed convolution of the
output gradient with the same weights, the weight gradient the correlation of the input with the output gradient.
"""

import numpy as np

from scratchnet.backend import kernel
from scratchnet.functional.elementwise import operands
from scratchnet.functional.reductions import mean
from scratchnet.tensor import FLOAT_DTYPES, Tensor


def check_int(value, name: str, low: int) -> int:
    """`value` as an int >= `low`, or a ValueError/TypeError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_images(x: Tensor, op: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: x must be 4-D [N, C, H, W], got shape {x.shape}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: x must be float32 or float64, got dtype {x.dtype}")


def _output_size(size: int, k: int, stride: int, padding: int, op: str) -> int:
    out = (size + 2 * padding - k) // stride + 1
    if out < 1:
        raise ValueError(f"{op}: a {k}x{k} window does not fit an input of size {size} with padding {padding}")
    return out


def conv2d(x: Tensor, w: Tensor, b: Tensor | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """Cross-correlation y[n, f] = sum_c x[n, c] * w[f, c] (+ b[f]), zero padding, as PyTorch's conv2d.

    x [N, C, H, W], w [F, C, KH, KW], b [F] -> y [N, F, OH, OW], OH = (H + 2 padding - KH) // stride + 1.
    """
    _check_images(x, "conv2d")
    if w.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ValueError(f"conv2d: w must be [F, {x.shape[1]}, KH, KW] for x of shape {x.shape}, got {w.shape}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"conv2d: b must have shape ({w.shape[0]},), got {b.shape}")
    stride, padding = check_int(stride, "stride", 1), check_int(padding, "padding", 0)
    _output_size(x.shape[2], w.shape[2], stride, padding, "conv2d")
    _output_size(x.shape[3], w.shape[3], stride, padding, "conv2d")
    x, w = operands(x, w, "conv2d", broadcast=False)

    y = kernel("conv2d_forward")(x.data, w.data, stride, padding)
    edges = [
        (x, lambda g: kernel("conv2d_backward_input")(g, w.data, x.shape, stride, padding)),
        (w, lambda g: kernel("conv2d_backward_weight")(g, x.data, w.shape, stride, padding)),
    ]
    if b is not None:
        _, b = operands(x, b, "conv2d", broadcast=False)
        y += b.data[None, :, None, None]
        edges.append((b, lambda g: g.sum(axis=(0, 2, 3))))
    return Tensor.from_op(y, edges, "conv2d")


def _pool_arguments(x: Tensor, kernel_size, stride, padding, op: str) -> tuple[int, int, int]:
    _check_images(x, op)
    k = check_int(kernel_size, "kernel_size", 1)
    s = k if stride is None else check_int(stride, "stride", 1)
    p = check_int(padding, "padding", 0)
    if 2 * p > k:
        raise ValueError(f"{op}: padding must be at most half the kernel size, got padding {p} for kernel {k}")
    _output_size(x.shape[2], k, s, p, op)
    _output_size(x.shape[3], k, s, p, op)
    return k, s, p


def max_pool2d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """The max of each k x k window (stride defaults to k); the gradient goes to the window's argmax."""
    k, s, p = _pool_arguments(x, kernel_size, stride, padding, "max_pool2d")
    y, argmax = kernel("max_pool2d_forward")(x.data, k, s, p)
    return Tensor.from_op(y, [(x, lambda g: kernel("max_pool2d_backward")(g, argmax, x.shape))], "max_pool2d")


def avg_pool2d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """The mean of each k x k window, zero padding counted (stride defaults to k)."""
    k, s, p = _pool_arguments(x, kernel_size, stride, padding, "avg_pool2d")
    y = kernel("avg_pool2d_forward")(x.data, k, s, p)
    return Tensor.from_op(y, [(x, lambda g: kernel("avg_pool2d_backward")(g, x.shape, k, s, p))], "avg_pool2d")


def global_avg_pool2d(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, C]: the mean of each channel's plane."""
    _check_images(x, "global_avg_pool2d")
    return mean(x, axis=(2, 3))
