"""Convolution taps as shifted flat planes: split into its stride phases, an image meets tap (c, i, j) in one phase
plane, shifted by (i // s, j // s) rows and columns. Laid flat on the phase grid, every tap is then one contiguous
vector, which two conv passes use (the row expansion of conv.py is the other engine):

- the direct forward, for a short receptive field (few input channels, as at a network's input): each tap's
  plane, scaled by its weight, summed into the output plane, vectorized along the output positions (a dot
  product over a receptive field of 9 values is too short to vectorize);
- the weight gradient: gw[f, tap] = <gy[f] on the phase grid, the tap's shifted plane>, one long dot product.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from scratchnet.kernels.dot_blocks import FASTMATH, RB, RJ, _tile

DIRECT_CHUNK = 1024  # positions of the output plane per pass of the direct path: four rows of sums stay in L1
# The weight gradient's phase planes sized for L2, with enough images side by side that each dot product is long.
PLANE_BYTES = 1024 * 1024
DOT_LENGTH = 512


@njit(cache=True)
def _phase_planes(x, n0, count, s, p, kh, kw, hq, wq, planes):
    """planes[(c * s + a) * s + b, g * hq * wq + i * wq + j] = x[n0 + g, c, s * i + a - p, s * j + b - p] (zero
    outside x), for the images g < count and the phases (a, b) that some tap reads: each phase of each image as a
    flat plane, the images one after another, so that tap (i, j) is a plain shift of phase (i % s, j % s)."""
    chans, h, w = x.shape[1], x.shape[2], x.shape[3]
    for c in range(chans):
        for a in range(min(s, kh)):
            for b in range(min(s, kw)):
                plane = planes[(c * s + a) * s + b]
                for g in range(count):
                    for i in range(hq):
                        row = plane[(g * hq + i) * wq : (g * hq + i + 1) * wq]
                        r = s * i + a - p
                        for j in range(wq):
                            q = s * j + b - p
                            row[j] = x[n0 + g, c, r, q] if 0 <= r < h and 0 <= q < w else 0


def _tap_shifts(c, kh, kw, s, wq, multiple=1):
    """shifts[t] = (phase plane, offset) of tap t = (c, i, j) in C order: split into its stride phases, the image
    meets tap (i, j) in phase (i % s, j % s) shifted by (i // s, j // s) rows and columns of a grid of width wq.
    Padded with (0, 0) rows to a multiple of `multiple` taps."""
    ci, ii, jj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    shifts = np.stack([((ci * s + ii % s) * s + jj % s), (ii // s) * wq + jj // s], axis=-1).reshape(-1, 2)
    return np.concatenate([shifts, np.zeros((-len(shifts) % multiple, 2), shifts.dtype)]).astype(np.int64)


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _three_taps(o0, o1, o2, o3, x0, x1, x2, w, t, n):
    """o_j[:n] += w[j, t] * x0[:n] + w[j, t + 1] * x1[:n] + w[j, t + 2] * x2[:n] for four filters j: three taps'
    planes loaded once for four filters, twelve FMAs for four loads and four stores of the sums."""
    a0, b0, c0 = w[0, t], w[0, t + 1], w[0, t + 2]
    a1, b1, c1 = w[1, t], w[1, t + 1], w[1, t + 2]
    a2, b2, c2 = w[2, t], w[2, t + 1], w[2, t + 2]
    a3, b3, c3 = w[3, t], w[3, t + 1], w[3, t + 2]
    for k in range(n):
        u, v, z = x0[k], x1[k], x2[k]
        o0[k] += a0 * u + b0 * v + c0 * z
        o1[k] += a1 * u + b1 * v + c1 * z
        o2[k] += a2 * u + b2 * v + c2 * z
        o3[k] += a3 * u + b3 * v + c3 * z


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _one_tap(o0, o1, o2, o3, x0, w, t, n):
    """o_j[:n] += w[j, t] * x0[:n] for four filters j (the taps left over after the threes)."""
    a0, a1, a2, a3 = w[0, t], w[1, t], w[2, t], w[3, t]
    for k in range(n):
        u = x0[k]
        o0[k] += a0 * u
        o1[k] += a1 * u
        o2[k] += a2 * u
        o3[k] += a3 * u


@njit(parallel=True, cache=True)
def _direct(x, wt, s, p, kh, kw, shifts, hq, wq, chunk, out, threads):
    """out[n, f, i, j] = sum_t wt[f, t] * plane_t[i * wq + j + shift_t], with tap t = (c, di, dj) reading phase
    plane shifts[t, 0] of image n (`_phase_planes`) from offset shifts[t, 1]: the forward as a sum of scaled,
    shifted planes, vectorized along the output positions instead of along the receptive field.

    The sums run over the flat phase grid (width wq >= ow) in chunks of `chunk` positions for RJ filters at a
    time; the first ow of each grid row are the outputs. The work items (image, block of RJ filters) are split
    evenly over the threads in that order, so that a batch of one image still uses every core.
    """
    n_img, nt = x.shape[0], shifts.shape[0]
    nf, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    out3 = out.reshape(n_img, nf, oh * ow)
    length = (oh - 1) * wq + ow
    planes = np.zeros((threads, x.shape[1] * s * s, hq * wq), x.dtype)
    sums = np.empty((threads, RJ, min(chunk, length)), x.dtype)
    blocks = -(-nf // RJ)
    items = n_img * blocks
    for t in prange(threads):
        pl, acc, current = planes[t], sums[t], -1
        for item in range(t * items // threads, (t + 1) * items // threads):
            n, f = item // blocks, item % blocks * RJ
            if n != current:
                _phase_planes(x, n, 1, s, p, kh, kw, hq, wq, pl)
                current = n
            w = wt[f:]
            for k0 in range(0, length, chunk):
                m = min(chunk, length - k0)
                acc[:, :m] = 0
                o0, o1, o2, o3 = acc[0], acc[1], acc[2], acc[3]
                for u in range(0, nt - nt % 3, 3):
                    _three_taps(o0, o1, o2, o3, pl[shifts[u, 0], k0 + shifts[u, 1] :],
                                pl[shifts[u + 1, 0], k0 + shifts[u + 1, 1] :],
                                pl[shifts[u + 2, 0], k0 + shifts[u + 2, 1] :], w, u, m)
                for u in range(nt - nt % 3, nt):
                    _one_tap(o0, o1, o2, o3, pl[shifts[u, 0], k0 + shifts[u, 1] :], w, u, m)
                for j in range(min(RJ, nf - f)):  # grid rows i meeting the chunk: their first ow positions
                    for i in range(k0 // wq, min(oh, -(-(k0 + m) // wq))):
                        lo, hi = max(i * wq, k0), min(i * wq + ow, k0 + m)
                        dst, src = out3[n, f + j, i * ow + lo - i * wq :], acc[j, lo - k0 :]
                        for q in range(hi - lo):
                            dst[q] = src[q]
    return out


def direct_forward(x, w, stride, padding, out):
    """out = conv2d_forward(x, w, stride, padding) by the direct path (x, w C-contiguous and checked)."""
    c, kh, kw, f = x.shape[1], w.shape[2], w.shape[3], w.shape[0]
    oh, ow = out.shape[2], out.shape[3]
    hq, wq = oh + (kh - 1) // stride, ow + (kw - 1) // stride
    wt = np.zeros((-(-f // RJ) * RJ, c * kh * kw), x.dtype)
    wt[:f] = w.reshape(f, c * kh * kw)
    shifts = _tap_shifts(c, kh, kw, stride, wq)
    return _direct(x, wt, stride, padding, kh, kw, shifts, hq, wq, DIRECT_CHUNK, out, get_num_threads())


@njit(fastmath=FASTMATH, cache=True)
def _tap_dots(grads, planes, shifts, length, acc):
    """acc[f, t] += <grads[f, :length], planes[plane t, shift t :][:length]> for taps t = (plane, shift), in
    tiles of RB taps by RJ filters."""
    for f in range(0, grads.shape[0], RJ):
        g0, g1, g2, g3 = grads[f], grads[f + 1], grads[f + 2], grads[f + 3]
        for t in range(0, shifts.shape[0], RB):
            x0 = planes[shifts[t, 0], shifts[t, 1] :]
            x1 = planes[shifts[t + 1, 0], shifts[t + 1, 1] :]
            s = _tile(x0, x1, g0, g1, g2, g3, length)
            for i in range(RB):
                for j in range(RJ):
                    acc[f + j, t + i] += s[i * RJ + j]


@njit(parallel=True, cache=True)
def _weight_grad(gy, x, s, p, kh, kw, shifts, group, hq, wq, fpad, plane_len, threads):
    """acc[f, t] = sum over images of <gy[n, f] laid out on the phase grid, tap t's shifted phase plane>,
    computed per thread over its images, `group` images per dot product, then summed over the threads."""
    n_img, chans = x.shape[0], x.shape[1]
    nf, oh, ow = gy.shape[1], gy.shape[2], gy.shape[3]
    acc = np.zeros((threads, fpad, shifts.shape[0]), x.dtype)
    planes = np.zeros((threads, chans * s * s, plane_len), x.dtype)
    grads = np.zeros((threads, fpad, group * hq * wq), x.dtype)  # zero between rows and images stays zero
    for t in prange(threads):
        n1 = (t + 1) * n_img // threads
        for n0 in range(t * n_img // threads, n1, group):
            count = min(group, n1 - n0)
            _phase_planes(x, n0, count, s, p, kh, kw, hq, wq, planes[t])
            for g in range(count):
                for f in range(nf):
                    for i in range(oh):
                        row = grads[t, f, (g * hq + i) * wq :]
                        for j in range(ow):
                            row[j] = gy[n0 + g, f, i, j]
            _tap_dots(grads[t], planes[t], shifts, (count - 1) * hq * wq + oh * wq, acc[t])
    return acc.sum(axis=0)


def weight_gradient(gy, x, w_shape, s, p):
    """conv2d_backward_weight (gy, x C-contiguous and checked). Split into its stride phases, the image meets each
    tap in one phase plane, shifted (`_tap_shifts`). Laid out flat on the phase grid (width wq, hq rows per image),
    gy and the phase plane are then two contiguous vectors and the tap one dot product. The padding of gy's grid is
    zero, so the values it meets add nothing (unless x holds inf or NaN, which then spreads to more taps than the
    reference's)."""
    n, c = x.shape[0], x.shape[1]
    f, kh, kw = w_shape[0], w_shape[2], w_shape[3]
    oh, ow = gy.shape[2], gy.shape[3]
    hq, wq = oh + (kh - 1) // s, ow + (kw - 1) // s
    image_bytes = c * min(s, kh) * min(s, kw) * hq * wq * x.dtype.itemsize
    group = max(1, min(-(-DOT_LENGTH // (hq * wq)), PLANE_BYTES // image_bytes, -(-n // get_num_threads())))
    shifts = _tap_shifts(c, kh, kw, s, wq, multiple=RB)
    # the longest dot product, from the largest shift, ends inside the plane: group * hq * wq + (kw - 1) // s
    plane_len = group * hq * wq + (kw - 1) // s
    acc = _weight_grad(gy, x, s, p, kh, kw, shifts, group, hq, wq, -(-f // RJ) * RJ, plane_len, get_num_threads())
    return np.ascontiguousarray(acc[:f, : c * kh * kw]).reshape(w_shape)
