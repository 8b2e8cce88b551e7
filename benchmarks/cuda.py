"""The CUDA kernels (scratchnet/kernels/cuda/) on the GPU against the Numba CPU kernels and, where torch has CUDA,
torch on the same GPU, all in one run.

In the rows, "ours" is the GPU kernel with its inputs and outputs resident on the GPU (device arrays: no PCIe copies),
timed to the end of the GPU's work; "reference" is the Numba CPU kernel on the same data (so "vs reference" is the GPU's
speed-up over this machine's CPU); "torch" is torch on the GPU (cudnn's conv, cdist). Shapes: the conv benchmark's first
layer (N=128, 32 -> 64 channels, 3x3, 28x28, padding 1) and the l-inf-dist layer at the issue's GPU shape, x [512, 5120]
and w [5120, 5120], float32. The last rows time one training epoch of the l-inf-dist net (depth 5, hinge loss, Adam,
batches of 512 on 4,096 MNIST-shaped images) at p = 8 and at p = inf, "reference" being the CPU (backend numba) and
"ours" either `ResidentTrainer` (the net stays on the GPU) or the autograd with backend cuda, which keeps its arrays on
the host and so copies every kernel call's inputs to the GPU and its outputs back; before the timing at width 1024, one
float64 step of each is compared with the CPU's (its loss and the weights after it). Without a GPU (or under the CUDA
simulator, whose timings mean nothing) the module says so and returns no rows.
"""

import platform
import re
from pathlib import Path

import numba
import numpy as np

import scratchnet as sn
from benchmarks.timing import agreement, best_times, in_sequence, row
from scratchnet import linf_dist_training as T
from scratchnet.kernels import conv, linf_dist, reference

DESCRIPTION = "GPU (numba.cuda) kernels against the CPU kernels and torch on the GPU: conv2d, l-inf-dist"

CONV = (128, 32, 64, 28, 3, 1, 1)  # N, C, F, side, kernel, stride, padding
B, N, M = 512, 5120, 5120
EPOCH_IMAGES, EPOCH_INPUT, EPOCH_BATCH, EPOCH_DEPTH, EPOCH_WIDTHS = 4096, 784, 512, 5, (1024, 5120)


def _gpu_missing() -> str | None:
    """Why no GPU timing can be taken here, or None."""
    try:
        from numba import config, cuda
    except ImportError as error:
        return f"numba.cuda is not installed ({error}); `pip install numba-cuda`"
    if config.ENABLE_CUDASIM:
        return "NUMBA_ENABLE_CUDASIM=1: the simulator's timings mean nothing"
    if not cuda.is_available():
        return "no CUDA GPU is available"
    return None


def _synchronized(fn):
    """fn, then wait for the GPU to finish its work."""
    from numba import cuda

    def run():
        fn()
        cuda.synchronize()

    return run


def _torch_gpu(torch):
    """torch when it can use a CUDA GPU, else None; its conv and matmul in full float32, as ours (cuDNN's default
    TF32 rounds the inputs to 10-bit mantissas on the tensor cores: faster, but another computation)."""
    if torch is None or not torch.cuda.is_available():
        return None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


def _torch_timed(torch, fn):
    """fn, then wait for the GPU; None (no torch column) if a first call fails, e.g. out of GPU memory."""
    def run():
        fn()
        torch.cuda.synchronize()

    try:
        run()
    except RuntimeError as error:
        print(f"torch variant dropped: {str(error).splitlines()[0]}", flush=True)
        return None
    return run


def _conv_rows(repeat, torch):
    from numba import cuda

    from scratchnet.kernels.cuda import conv as gpu_conv

    n, c, f, side, k, s, p = CONV
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, side, side), dtype=np.float32)
    w = rng.standard_normal((f, c, k, k), dtype=np.float32)
    o = reference.output_size(side, k, s, p)
    gy = rng.standard_normal((n, f, o, o), dtype=np.float32)
    xd, wd, gyd = cuda.to_device(x), cuda.to_device(w), cuda.to_device(gy)
    ours = {
        "forward": lambda: gpu_conv.conv2d_forward(xd, wd, s, p),
        "backward-input": lambda: gpu_conv.conv2d_backward_input(gyd, wd, x.shape, s, p),
        "backward-weight": lambda: gpu_conv.conv2d_backward_weight(gyd, xd, w.shape, s, p),
    }
    cpu = {
        "forward": lambda: conv.conv2d_forward(x, w, s, p),
        "backward-input": lambda: conv.conv2d_backward_input(gy, w, x.shape, s, p),
        "backward-weight": lambda: conv.conv2d_backward_weight(gy, x, w.shape, s, p),
    }
    theirs = {}
    if torch is not None:
        xt, wt, gyt = (torch.from_numpy(a).cuda() for a in (x, w, gy))
        backward = torch.ops.aten.convolution_backward

        def gradient(mask):
            return lambda: backward(gyt, xt, wt, None, [s] * 2, [p] * 2, [1, 1], False, [0, 0], 1, mask)

        theirs = {"forward": lambda: torch.nn.functional.conv2d(xt, wt, stride=s, padding=p),
                  "backward-input": gradient([True, False, False]),
                  "backward-weight": gradient([False, True, False])}
    rows = []
    for name in ours:
        agrees = agreement([(ours[name](), cpu[name]())], exact=False)
        times = best_times({"ours": _synchronized(ours[name]), "reference": cpu[name],
                            "torch": _torch_timed(torch, theirs[name]) if name in theirs else None}, repeat)
        shape = f"x[{n},{c},{side},{side}] w[{f},{c},{k},{k}] stride {s} padding {p} float32"
        rows.append(row(f"gpu conv2d {name}", shape, times) | {"gpu_vs_cpu": agrees})
    return rows


def _linf_rows(repeat, torch):
    from numba import cuda

    from scratchnet.kernels.cuda import linf_dist as gpu_linf

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((B, N), dtype=np.float32), rng.standard_normal((M, N), dtype=np.float32)
    gy = rng.standard_normal((B, M), dtype=np.float32)
    xd, wd, gyd = cuda.to_device(x), cuda.to_device(w), cuda.to_device(gy)
    y_d, index_d = gpu_linf.linf_dist_forward(xd, wd)
    y, index = linf_dist.linf_dist_forward(x, w)
    forward_agrees = agreement([(y_d, y), (index_d, index)], exact=True)
    backward_agrees = agreement(zip(gpu_linf.linf_dist_backward(gyd, xd, wd, index_d),
                                    linf_dist.linf_dist_backward(gy, x, w, index), strict=True), exact=False)
    agrees = {"forward": forward_agrees,
              "forward+backward": forward_agrees if forward_agrees != "equal" else backward_agrees}
    ours = {"forward": lambda: gpu_linf.linf_dist_forward(xd, wd),
            "forward+backward": in_sequence(lambda: gpu_linf.linf_dist_forward(xd, wd),
                                            lambda: gpu_linf.linf_dist_backward(gyd, xd, wd, index_d))}
    cpu = {"forward": lambda: linf_dist.linf_dist_forward(x, w),
           "forward+backward": in_sequence(lambda: linf_dist.linf_dist_forward(x, w),
                                           lambda: linf_dist.linf_dist_backward(gy, x, w, index))}
    theirs = {}
    if torch is not None:
        xt, wt, gyt = (torch.from_numpy(a).cuda() for a in (x, w, gy))
        xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()

        def forward_backward():
            xg.grad = wg.grad = None
            torch.cdist(xg, wg, p=float("inf")).backward(gyt)

        theirs = {"forward": lambda: torch.cdist(xt, wt, p=float("inf")), "forward+backward": forward_backward}
    rows = []
    for name in ours:
        times = best_times({"ours": _synchronized(ours[name]), "reference": cpu[name],
                            "torch": _torch_timed(torch, theirs[name]) if name in theirs else None}, repeat)
        rate = B * M * N / times["ours"]
        rows.append(row(f"gpu linf {name} ({rate / 1e9:.0f} G elem/s)", f"x[{B},{N}] w[{M},{N}] float32", times)
                    | {"gpu_vs_cpu": agrees[name]})
    return rows


def _epoch(width, p, how):
    """One epoch of the l-inf-dist net at a fixed p: `how` is "resident" (ResidentTrainer: the net stays on the
    GPU), "cuda" (the autograd with backend cuda: copies at every kernel call) or "numba" (the CPU). Only the steps
    are timed: the model (drawing the 83M weights of width 5120 takes seconds) and the resident trainer (copying
    weights and Adam's moments to the GPU, once per run in `fit` too) are built outside the timed call, and each
    call goes on from where the last one ended (an epoch's work at a fixed p does not depend on the weights)."""
    rng = np.random.default_rng(0)
    x = rng.random((EPOCH_IMAGES, EPOCH_INPUT), dtype=np.float32)
    y = rng.integers(0, 10, EPOCH_IMAGES)
    step = _step(width, p, how, np.float32)

    def epoch():
        for i in range(0, EPOCH_IMAGES, EPOCH_BATCH):
            step(x[i:i + EPOCH_BATCH], y[i:i + EPOCH_BATCH])

    return epoch


def _step(width, p, how, dtype):
    """A training step of a fresh l-inf-dist net (seed 0, weights in `dtype`) at a fixed p, taken `how`:
    step(x, y) returns the loss. `step.model` is the net; `step.to_host()` copies a resident net's weights back
    into it (nothing to do for the others)."""
    model = sn.nn.LinfDistNet(EPOCH_INPUT, EPOCH_DEPTH, width, 10, p=p, mean=0.1307, std=0.3081, seed=0).to(dtype)
    adam = sn.optim.Adam(model.parameters(), lr=0.02, betas=(0.9, 0.99), eps=1e-10)
    objective, rng = T.HingeLoss(0.3), np.random.default_rng(0)
    if how == "resident":
        from scratchnet.linf_dist_gpu import ResidentTrainer

        trainer = ResidentTrainer(model, adam)

        def step(x, y):
            return trainer.step(x, y, objective)[0].data

        step.to_host = trainer.to_host
    else:
        def step(x, y):
            with sn.backend.use_backend(how):
                loss, _ = objective(model, x, y, rng)
                adam.zero_grad()
                loss.backward()
                adam.step()
            return loss.data

        step.to_host = lambda: None
    step.model = model
    return step


def _epoch_agreement(width, p) -> dict:
    """Before timing: one step of each way of training from the same weights, its loss and every weight after
    it against the CPU's ({"resident": ..., "cuda": ...}). In float64, where Adam's first update (about lr times
    the sign of the gradient) cannot be decided by the rounding of a gradient that should be zero."""
    rng = np.random.default_rng(1)
    x, y = rng.random((EPOCH_BATCH, EPOCH_INPUT)), rng.integers(0, 10, EPOCH_BATCH)
    results = {}
    for how in ("numba", "cuda", "resident"):
        step = _step(width, p, how, np.float64)
        loss = step(x, y)
        step.to_host()
        results[how] = [loss, *(parameter.data for parameter in step.model.parameters())]
    return {how: agreement(zip(results[how], results["numba"], strict=True), exact=False)
            for how in ("resident", "cuda")}


def _epoch_rows(repeat):
    rows = []
    for width in EPOCH_WIDTHS:
        for p in (8.0, float("inf")):
            cpu = width <= 1024  # the CPU's 5120 epoch takes minutes: it is timed, and compared, at 1024 only
            agrees = _epoch_agreement(width, p) if cpu else {}
            times = best_times({"resident": _synchronized(_epoch(width, p, "resident")),
                                "cuda": _synchronized(_epoch(width, p, "cuda")),
                                "numba": _epoch(width, p, "numba") if cpu else None}, min(repeat, 2))
            shape = f"{EPOCH_IMAGES} images, depth {EPOCH_DEPTH}, width {width}, batch {EPOCH_BATCH}"
            for how, label in (("resident", "resident on the GPU"), ("cuda", "backend cuda, copies per call")):
                rows.append(row(f"gpu linf-dist net epoch, p = {p:g}, {label}", shape,
                                {"ours": times[how], "reference": times["numba"]})
                            | {"gpu_vs_cpu": agrees.get(how)})
    return rows


def run(repeat: int, torch=None) -> list[dict]:
    missing = _gpu_missing()
    if missing is not None:
        print(f"cuda benchmark skipped: {missing}. It needs an NVIDIA GPU with numba-cuda.", flush=True)
        return []
    torch = _torch_gpu(torch)
    model = platform.processor() or "an unnamed CPU"
    if Path("/proc/cpuinfo").exists():
        names = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = names[0] if names else model
    print(f"reference: the Numba CPU kernels on {numba.get_num_threads()} threads of {model} (--threads)", flush=True)
    rows = []
    for group in (lambda: _linf_rows(repeat, torch), lambda: _conv_rows(repeat, torch), lambda: _epoch_rows(repeat)):
        for r in group():  # printed group by group: a GPU session may be cut off before the table
            cpu, torch_ratio = r["ratio_vs_reference"] or float("nan"), r["ratio_vs_torch"] or float("nan")
            print(f"  {r['name']}: ours {r['ours_s'] * 1e3:.2f} ms, GPU speed-up over the CPU {cpu:.1f}x, "
                  f"over torch {torch_ratio:.2f}x; results: {r.get('gpu_vs_cpu') or 'not compared'}", flush=True)
            rows.append(r)
    return rows
