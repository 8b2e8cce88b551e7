"""The norm regularizers of Liang & Huang 2021 ("Large Norms of CNN Layers Do Not Hurt Adversarial Robustness",
AAAI): norm decay (their Algorithm 1), singular value clipping (Sedghi et al. 2019) and BatchNorm projection.
(Weight decay is the `weight_decay` of `scratchnet.optim.SGD`.)

Each acts between the backward pass and the optimizer step:

    loss.backward(); decay.step(); clipping.step(); project_batchnorm(model, 5.0); optimizer.step()
"""

import numbers

import numpy as np

from scratchnet.backend import kernel
from scratchnet.functional.conv import check_int
from scratchnet.nn.layers import BatchNorm1d, BatchNorm2d, Conv2d, Linear
from scratchnet.norms import conv_input_sizes

NORMS = ("l1", "linf")


def _check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def norm_subgradient(weight: np.ndarray, norm: str, stride: int = 1) -> np.ndarray:
    """A subgradient of the layer's l1 or l-inf norm formula (scratchnet.norms) with respect to W: sign(W) on the
    entries of the maximal sum, 0 elsewhere (the first maximum on ties). Conv W [C_out, C_in, k, k]: l1, the tap
    class of the maximal channel, W[:, c*, r1*::s, r2*::s]; l-inf, the maximal filter W[o*]. Linear W [out, in]:
    l1, the maximal column; l-inf, the maximal row. (Liang & Huang 2021, norm decay.)"""
    norm, stride = _check_norm(norm), check_int(stride, "stride", 1)
    if weight.ndim == 4 and norm == "l1":
        sums = kernel("conv_l1_class_sums")(weight, stride)
        c, r1, r2 = np.unravel_index(np.argmax(sums), sums.shape)
        where = (slice(None), c, slice(r1, None, stride), slice(r2, None, stride))
    elif weight.ndim == 4:
        where = np.argmax(kernel("conv_linf_filter_sums")(weight))
    elif weight.ndim == 2 and norm == "l1":
        where = (slice(None), np.argmax(np.abs(weight).sum(axis=0)))
    elif weight.ndim == 2:
        where = np.argmax(np.abs(weight).sum(axis=1))
    else:
        raise ValueError(f"weight must be 4-D (conv) or 2-D (linear), got shape {weight.shape}")
    g = np.zeros_like(weight)
    g[where] = np.sign(weight[where])
    return g


class NormDecay:
    """Norm decay, Liang & Huang 2021, Algorithm 1, on every Conv2d and Linear layer of `model`: with p the norm
    subgradient of a layer and h = 0 at the start, each `step()` does

        h <- momentum h + (1 - momentum) p,    grad W <- grad W + (beta / N) h,

    N being the number of regularized layers (the paper's N; its meaning there is not verified). The reference
    code differs: it overwrites h on the argmax with sign(W) and adds beta h, with no (1 - momentum) and no 1/N."""

    def __init__(self, model, beta: float, norm: str = "l1", momentum: float = 0.5):
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.beta, self.norm, self.momentum = beta, _check_norm(norm), momentum
        self.layers = [m for m in model.modules() if isinstance(m, Conv2d | Linear)]
        if not self.layers:
            raise ValueError(f"NormDecay needs a model with Conv2d or Linear layers; {type(model).__name__} has none")
        self.h = [np.zeros_like(m.weight.data) for m in self.layers]

    def step(self) -> None:
        scale = self.beta / len(self.layers)
        for layer, h in zip(self.layers, self.h, strict=True):
            w = layer.weight
            h *= self.momentum
            h += (1 - self.momentum) * norm_subgradient(w.data, self.norm, getattr(layer, "stride", 1))
            w.grad = scale * h if w.grad is None else w.grad + scale * h

    def state_dict(self) -> dict[str, np.ndarray]:
        """The momentum buffers h, so that a resumed run goes on as an uninterrupted one."""
        return {f"h.{i}": h.copy() for i, h in enumerate(self.h)}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {f"h.{i}" for i in range(len(self.h))} or any(
                np.shape(state[f"h.{i}"]) != h.shape for i, h in enumerate(self.h)):
            raise ValueError(f"the saved norm decay holds {sorted(state)}, this one {len(self.h)} buffers h.i of "
                             f"shapes {[h.shape for h in self.h]}")
        for i, h in enumerate(self.h):
            h[...] = state[f"h.{i}"]


def clip_singular_values(weight: np.ndarray, size, clip: float, repeats: int = 1) -> np.ndarray:
    """Singular value clipping (Sedghi, Gupta & Long 2019; used by Liang & Huang 2021): FFT2 of W zero-padded to
    the input size (an int n or (h, w)), every frequency's C_out x C_in matrix U S V^H -> U min(S, clip) V^H,
    inverse FFT, real part, crop to kh x kw. The crop moves the singular values again, so one pass does not
    enforce the bound; `repeats` passes bring it closer (spec: 1.39 after one clip to 1.0, 1.01 after ten, on a
    4x3x3x3 kernel with n = 6)."""
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    if np.ndim(weight) != 4:
        raise ValueError(f"weight must be a 4-D conv kernel [C_out, C_in, kh, kw], got shape {np.shape(weight)}")
    kh, kw = weight.shape[2:]
    sizes = np.atleast_1d(size)
    if sizes.shape not in ((1,), (2,)) or not all(isinstance(n, numbers.Integral) for n in sizes.tolist()):
        raise ValueError(f"size must be the input size, an int n or a pair (h, w), got {size!r}")
    h, v = (int(sizes[0]), int(sizes[-1]))
    if h < kh or v < kw:
        raise ValueError(f"size must be >= the kernel size {(kh, kw)}, got {size}")
    w = weight
    for _ in range(check_int(repeats, "repeats", 1)):
        transfer = np.fft.fft2(w, s=(h, v), axes=(2, 3)).transpose(2, 3, 0, 1)
        u, s, vh = np.linalg.svd(transfer, full_matrices=False)
        clipped = (u * np.minimum(s, clip)[..., None, :]) @ vh
        w = np.fft.ifft2(clipped.transpose(2, 3, 0, 1), axes=(2, 3)).real[:, :, :kh, :kw]
    return w.astype(weight.dtype)


class SingularValueClipping:
    """Clip the singular values of every Conv2d of `model` (treated as a circular stride-1 conv on its input
    size, as the paper's code does) to `clip`, on the first `step()` and then every `every` steps."""

    def __init__(self, model, input_shape, clip: float, every: int = 100, repeats: int = 1):
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.clip, self.every, self.steps = clip, check_int(every, "every", 1), 0
        self.repeats = check_int(repeats, "repeats", 1)
        self.sizes = conv_input_sizes(model, tuple(input_shape))

    def step(self) -> None:
        if self.steps % self.every == 0:
            for conv, size in self.sizes.items():
                if min(size) >= conv.kernel_size:  # the paper's code skips inputs smaller than the kernel
                    conv.weight.data[...] = clip_singular_values(conv.weight.data, size, self.clip, self.repeats)
        self.steps += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        """The step count, so that a resumed run clips at the steps an uninterrupted one would."""
        return {"steps": np.array(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"steps"}:
            raise ValueError(f"the saved singular value clipping holds {sorted(state)}, not ['steps']")
        self.steps = int(state["steps"])


def project_batchnorm(model, bound: float) -> None:
    """BatchNorm projection (Liang & Huang 2021): every channel with |gamma_c| / sigma_c > bound gets
    gamma_c = bound sigma_c sign(gamma_c), so that each BatchNorm's norm is at most `bound` (up to the rounding of
    gamma to its dtype). (The paper's code resets only the largest channel per call; clipping all of them is the
    projection onto that set.) A BatchNorm without a weight (affine=False) is left alone: its norm 1 / sigma_c
    has nothing to clip."""
    if not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    for m in model.modules():
        if isinstance(m, BatchNorm1d | BatchNorm2d) and m.weight is not None:
            sigma = np.sqrt(m.running_var + m.eps)
            gamma = m.weight.data
            gamma[...] = np.sign(gamma) * np.minimum(np.abs(gamma), bound * sigma).astype(gamma.dtype)
