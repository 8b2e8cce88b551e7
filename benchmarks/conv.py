"""conv2d: the Numba kernels against the NumPy reference (im2col + matmul) and torch's CPU convolution.

The first shape is the issue's (N=128, 32 -> 64 channels, 3x3, 28x28, padding 1, float32), timed pass by pass
and as forward + backward; the others are the WideResNet's other layer kinds and the input layers of an MNIST
and a CIFAR net (the forward's direct path). torch's backward passes are `aten.convolution_backward`, which
autograd calls, restricted to one gradient each. Before timing, each row's results are checked against torch's
(`torch_results`: "close" or "MISMATCH").
"""

import numpy as np

from benchmarks.timing import agreement, best_times, in_sequence, row
from scratchnet.kernels import conv, reference

DESCRIPTION = "conv2d forward, input gradient, weight gradient, and all three together"

# (label, N, C, F, side, kernel, stride, padding); the first is timed pass by pass
SHAPES = [
    ("3x3", 128, 32, 64, 28, 3, 1, 1),
    ("3x3 stride 2", 128, 64, 128, 28, 3, 2, 1),
    ("1x1 stride 2 shortcut", 128, 64, 128, 28, 1, 2, 0),
    ("3x3 wide, 7x7 planes", 128, 320, 320, 7, 3, 1, 1),
    ("3x3 one input channel", 128, 1, 32, 28, 3, 1, 1),
    ("3x3 three input channels", 128, 3, 16, 32, 3, 1, 1),
]


def _passes(kernels, x, w, gy, stride, padding):
    return {
        "forward": lambda: kernels.conv2d_forward(x, w, stride, padding),
        "backward-input": lambda: kernels.conv2d_backward_input(gy, w, x.shape, stride, padding),
        "backward-weight": lambda: kernels.conv2d_backward_weight(gy, x, w.shape, stride, padding),
    }


def _torch_passes(torch, x, w, gy, stride, padding):
    """torch's passes, each returning its result (forward+backward: the three), for the agreement check."""
    xt, wt, gyt = (torch.from_numpy(a) for a in (x, w, gy))
    xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()
    backward = torch.ops.aten.convolution_backward

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(xt, wt, stride=stride, padding=padding)

    def gradient(mask):
        which = mask.index(True)
        return lambda: backward(gyt, xt, wt, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1,
                                mask)[which]

    def forward_backward():
        xg.grad = wg.grad = None
        y = torch.nn.functional.conv2d(xg, wg, stride=stride, padding=padding)
        y.backward(gyt)
        return y, xg.grad, wg.grad

    return {
        "forward": forward,
        "backward-input": gradient([True, False, False]),
        "backward-weight": gradient([False, True, False]),
        "forward+backward": forward_backward,
    }


def _torch_results(ours, theirs, name):
    """Our results against torch's for one row; the forward+backward row compares all three passes."""
    passes = list(ours) if name == "forward+backward" else [name]
    theirs_results = theirs[name]() if name == "forward+backward" else [theirs[name]()]
    return agreement(zip([ours[p]() for p in passes], theirs_results, strict=True), exact=False)


def run(repeat: int, torch=None) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i, (label, n, c, f, side, k, stride, padding) in enumerate(SHAPES):
        out = reference.output_size(side, k, stride, padding)
        x = rng.standard_normal((n, c, side, side), dtype=np.float32)
        w = rng.standard_normal((f, c, k, k), dtype=np.float32) / np.float32(np.sqrt(c * k * k))
        gy = rng.standard_normal((n, f, out, out), dtype=np.float32)
        shape = f"x[{n},{c},{side},{side}] w[{f},{c},{k},{k}] stride {stride} padding {padding} float32"
        ours, ref = _passes(conv, x, w, gy, stride, padding), _passes(reference, x, w, gy, stride, padding)
        theirs = _torch_passes(torch, x, w, gy, stride, padding) if torch is not None else {}
        names = list(ours) + ["forward+backward"] if i == 0 else ["forward", "forward+backward"]
        results = {name: _torch_results(ours, theirs, name) for name in names if name in theirs}
        ours["forward+backward"] = in_sequence(*ours.values())
        ref["forward+backward"] = in_sequence(*ref.values())
        for name in names:
            times = best_times({"ours": ours[name], "reference": ref[name], "torch": theirs.get(name)}, repeat)
            rows.append(row(f"conv2d {label} {name}", shape, times) | {"torch_results": results.get(name)})
    return rows
