"""Max-pooling and average-pooling, 2x2 windows with stride 2 (the CNNs' downsampling): the Numba kernels
against the NumPy reference and torch, forward alone and forward + backward. Each variant returns its result (the
pooled values, or the input gradient), and before timing ours are checked against torch's (`torch_results`)."""

import numpy as np

from benchmarks.timing import agreement, best_times, row
from scratchnet.kernels import pool, reference

DESCRIPTION = "max_pool2d and avg_pool2d 2x2, forward and forward + backward"

N, C, SIDE, KERNEL = 128, 64, 28, 2


def _ours(kernels, x, gy):
    def max_forward():
        return kernels.max_pool2d_forward(x, KERNEL, KERNEL, 0)[0]

    def max_both():
        _, argmax = kernels.max_pool2d_forward(x, KERNEL, KERNEL, 0)
        return kernels.max_pool2d_backward(gy, argmax, x.shape)

    def avg_forward():
        return kernels.avg_pool2d_forward(x, KERNEL, KERNEL, 0)

    def avg_both():
        avg_forward()
        return kernels.avg_pool2d_backward(gy, x.shape, KERNEL, KERNEL, 0)

    return {"max_pool2d forward": max_forward, "max_pool2d forward+backward": max_both,
            "avg_pool2d forward": avg_forward, "avg_pool2d forward+backward": avg_both}


def _torch(torch, x, gy):
    xt, gyt = torch.from_numpy(x), torch.from_numpy(gy)
    xg = xt.clone().requires_grad_()
    functional = torch.nn.functional

    def forward(op):
        def run():
            with torch.no_grad():
                return op(xt, KERNEL)

        return run

    def both(op):
        def run():
            xg.grad = None
            op(xg, KERNEL).backward(gyt)
            return xg.grad

        return run

    return {"max_pool2d forward": forward(functional.max_pool2d),
            "max_pool2d forward+backward": both(functional.max_pool2d),
            "avg_pool2d forward": forward(functional.avg_pool2d),
            "avg_pool2d forward+backward": both(functional.avg_pool2d)}


def run(repeat: int, torch=None) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, SIDE, SIDE), dtype=np.float32)
    gy = rng.standard_normal((N, C, SIDE // KERNEL, SIDE // KERNEL), dtype=np.float32)
    shape = f"x[{N},{C},{SIDE},{SIDE}] kernel {KERNEL} stride {KERNEL} float32"
    ours, ref = _ours(pool, x, gy), _ours(reference, x, gy)
    theirs = _torch(torch, x, gy) if torch is not None else {}
    # max pooling picks and routes values exactly; the average's sum may round differently
    results = {name: agreement([(ours[name](), theirs[name]())], exact=name.startswith("max")) for name in theirs}
    return [row(name, shape, best_times({"ours": ours[name], "reference": ref[name], "torch": theirs.get(name)},
                                        repeat)) | {"torch_results": results.get(name)}
            for name in ours]
