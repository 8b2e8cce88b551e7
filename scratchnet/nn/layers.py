"""The standard layers as Modules: each holds its parameters and calls one op of `scratchnet.functional`.

Every layer accepts a Tensor or a NumPy array.
"""

import numpy as np

import scratchnet.functional as F
from scratchnet import streams
from scratchnet.functional.conv import check_int
from scratchnet.nn.init import as_rng, default_uniform
from scratchnet.nn.module import Module, Parameter
from scratchnet.tensor import as_tensor


class Linear(Module):
    """y = x W^T + b, W [out_features, in_features]; PyTorch's default uniform initialization."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None):
        super().__init__()
        self.in_features = check_int(in_features, "in_features", 1)
        self.out_features = check_int(out_features, "out_features", 1)
        rng = as_rng(rng)
        self.weight = Parameter(default_uniform((out_features, in_features), in_features, rng))
        self.bias = Parameter(default_uniform((out_features,), in_features, rng)) if bias else None

    def forward(self, x):
        return F.linear(as_tensor(x), self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution, weight [out_channels, in_channels, k, k]; PyTorch's default uniform initialization."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, rng=None):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.kernel_size = check_int(kernel_size, "kernel_size", 1)
        self.stride, self.padding = check_int(stride, "stride", 1), check_int(padding, "padding", 0)
        fan_in = in_channels * kernel_size * kernel_size
        rng = as_rng(rng)
        self.weight = Parameter(default_uniform((out_channels, in_channels, kernel_size, kernel_size), fan_in, rng))
        self.bias = Parameter(default_uniform((out_channels,), fan_in, rng)) if bias else None

    def forward(self, x):
        return F.conv2d(as_tensor(x), self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class _BatchNorm(Module):
    """Batch normalization (Ioffe & Szegedy 2015): per-channel normalization with learned scale and shift; running
    statistics are used in eval mode."""

    dims = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.num_features = check_int(num_features, "num_features", 1)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if not 0 < float(eps) < float("inf"):  # also refuses NaN
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        self.eps, self.momentum = eps, momentum
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine else None
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.ones(num_features, np.float32))

    def forward(self, x):
        x = as_tensor(x)
        if x.ndim not in self.dims:
            raise ValueError(f"{type(self).__name__}: x must have {' or '.join(map(str, self.dims))} dimensions, "
                             f"got shape {x.shape}")
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                            self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """BatchNorm over [N, C] inputs."""

    dims = (2,)


class BatchNorm2d(_BatchNorm):
    """BatchNorm over [N, C, H, W] inputs, with statistics per channel over N, H and W."""

    dims = (4,)


class Dropout(Module):
    """Inverted dropout (Srivastava et al. 2014): each unit is zeroed with probability p in training mode and the
    survivors scaled by 1 / (1 - p), so eval mode is the identity. Its masks come from
    `streams.generator(seed, "dropout", call number)`, and the call number is a buffer, so a training run resumed
    from a checkpoint draws the same masks as one that never stopped. Without a seed, one is drawn from the
    module-wide generator (`manual_seed`), as the other layers draw their weights: two layers built one after the
    other drop different units."""

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p, self.seed = p, int(as_rng(None).integers(2**63)) if seed is None else seed
        self.register_buffer("calls", np.zeros((), np.int64))

    def forward(self, x):
        if not self.training or self.p == 0:
            return as_tensor(x)
        rng = streams.generator(self.seed, "dropout", int(self.calls))
        self.calls += 1
        return F.dropout(as_tensor(x), self.p, True, rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _Elementwise(Module):
    op = None

    def forward(self, x):
        return type(self).op(as_tensor(x))


class ReLU(_Elementwise):
    """max(x, 0), elementwise."""

    op = F.relu


class Tanh(_Elementwise):
    """tanh(x), elementwise."""

    op = F.tanh


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)), elementwise."""

    op = F.sigmoid


class Identity(_Elementwise):
    """x unchanged (a placeholder layer)."""

    op = as_tensor


class Flatten(Module):
    """[N, ...] -> [N, prod(...)]."""

    def forward(self, x):
        return F.flatten(as_tensor(x), 1)


class _Pool(Module):
    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class MaxPool2d(_Pool):
    """The largest value of each k x k window (stride defaults to k; padding never wins the max)."""

    def forward(self, x):
        return F.max_pool2d(as_tensor(x), self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool):
    """The mean of each k x k window (stride defaults to k; padded zeros count in the mean, as in PyTorch)."""

    def forward(self, x):
        return F.avg_pool2d(as_tensor(x), self.kernel_size, self.stride, self.padding)


class GlobalAvgPool2d(Module):
    """[N, C, H, W] -> [N, C], the mean of each channel."""

    def forward(self, x):
        return F.global_avg_pool2d(as_tensor(x))
