"""The ReLU on the GPU: one thread per element each way (reference: kernels/reference/activation.py). The
backward reads the mask from the output: y > 0 exactly where x > 0."""

from numba import cuda

from scratchnet.kernels.cuda.launch import THREADS, blocks, is_device, returned, to_device


@cuda.jit
def _relu(x, out):
    """Thread layout: one thread per element of the flat arrays, THREADS per block."""
    t = cuda.grid(1)
    if t < x.size:
        out[t] = 0 if x[t] <= 0 else x[t]  # NaN <= 0 is false: NaN stays NaN


@cuda.jit
def _relu_backward(g, y, out):
    """Thread layout: one thread per element of the flat arrays, THREADS per block."""
    t = cuda.grid(1)
    if t < g.size:
        out[t] = g[t] if y[t] > 0 else g.dtype.type(0)


def relu_forward(x):
    """max(x, 0); NaN stays NaN."""
    xd = to_device(x)
    out = cuda.device_array(xd.shape, xd.dtype)
    _relu[blocks(xd.size), THREADS](xd.reshape(xd.size), out.reshape(out.size))
    return returned(out, is_device(x))


def relu_backward(g, y):
    """g where y = relu(x) > 0, else 0."""
    gd, yd = to_device(g), to_device(y)
    if gd.shape != yd.shape:
        raise ValueError(f"g and y must have one shape, got {gd.shape} and {yd.shape}")
    out = cuda.device_array(gd.shape, gd.dtype)
    _relu_backward[blocks(gd.size), THREADS](gd.reshape(gd.size), yd.reshape(yd.size), out.reshape(out.size))
    return returned(out, is_device(g))
