"""Numba CPU kernels for conv2d: a BLAS-free direct convolution on register-blocked dot products (dot_blocks.py).

Every pass is phrased as dot products over long contiguous axes, because that is the form LLVM's loop vectorizer
turns into vector FMAs with all accumulators kept in registers (shared/specs/kernel-performance.md, lesson 2).
This file holds the public kernels and the row-expansion engine; conv_planes.py the passes on flat phase planes:

- forward: the receptive field of each output position in a band of a few dozen positions is copied into one
  row of a small matrix R (a "row expansion": im2col of one band only, so it stays in L1). Copied from a
  channels-last copy of the image, a row is KH contiguous runs of KW * C values. Then y[f, p] = <W[f], R[p]>.
  A receptive field of fewer than DIRECT_KDIM values (few input channels, as at a network's input, or a 1x1 conv
  of fewer than 64) is too short a dot product to vectorize: it runs the direct forward of conv_planes.py.
- backward-input: the transposed convolution, run by the same engine on gy with flipped, transposed weights.
  A stride s splits it into s * s phases, each a stride-1 correlation with a sub-kernel, so no inserted zero is
  ever multiplied.
- backward-weight: gw[f, c, i, j] = <gy[f], x[c] shifted by (i, j)>, one dot product over flat padded planes
  (conv_planes.py).

Loop variables are bare `range` variables over C-contiguous views (lesson 3: an offset index `base + k` keeps
NumPy's negative-index wrap-around and turns the loop into gathers); workspaces are allocated once per call,
one per thread (lesson 4).
"""

import numpy as np
from numba import get_num_threads, njit, prange

from scratchnet.kernels import conv_planes
from scratchnet.kernels.dot_blocks import FASTMATH, RB, RC, RJ, _column, _tile

# Receptive fields of fewer values than DIRECT_KDIM run the direct forward. Measured crossover: one input channel
# 3x3 ran 2.3x faster direct, three channels 2.8x, eight channels (72 values) the same, sixteen 1.4x slower.
DIRECT_KDIM = 64
# Working-set sizes: a chunk of the reduction axis and a band of R sized for L1, a block of filters for L2.
K_CHUNK = 512
BAND_BYTES = 48 * 1024
W_BYTES = 512 * 1024
# Columns of a phase descriptor (the `grids` rows of `_correlate`).
NJ, NL, GH, GW, Y0, X0, ST, OY0, OYS, OX0, OXS = range(11)


@njit(cache=True)
def _channels_last(src, n, pad_t, pad_l, buf, hp, wp):
    """buf[(r * wp + q) * C + c] = src[n, c, r - pad_t, q - pad_l], zero outside src: image n zero-padded (or
    cropped, for a negative pad) to hp x wp, channels last so that a window row is one contiguous run. Row by
    row, so that the transposing writes stay in L1."""
    chans, h, w = src.shape[1], src.shape[2], src.shape[3]
    q0, q1 = max(0, pad_l), min(wp, w + pad_l)
    for r in range(hp):
        row = buf[r * wp * chans : (r + 1) * wp * chans]
        if r < pad_t or r >= h + pad_t or q0 >= q1:
            row[:] = 0
            continue
        row[: q0 * chans] = 0
        row[q1 * chans :] = 0
        for q in range(q0, q1):
            for c in range(chans):
                row[q * chans + c] = src[n, c, r - pad_t, q - pad_l]


@njit(cache=True)
def _expand(buf, wp, chans, grid, start, count, rows, opos, wo):
    """Row expansion of the band of `count` grid points from `start`: rows[m] = the window of point m, nj runs of
    nl * C values copied from the channels-last image, and opos[m] = the point's flat index in the output plane."""
    nj, nl, gw, y0, x0, st = grid[NJ], grid[NL], grid[GW], grid[Y0], grid[X0], grid[ST]
    run = nl * chans
    for m in range(count):
        gy, gx = divmod(start + m, gw)
        opos[m] = (grid[OY0] + grid[OYS] * gy) * wo + grid[OX0] + grid[OXS] * gx
        row = rows[m]
        for j in range(nj):
            src = buf[((y0 + st * gy + j) * wp + x0 + st * gx) * chans :]
            dst = row[j * run :]
            for q in range(run):
                dst[q] = src[q]


@njit(cache=True, inline="always")
def _put(out, f, p, v0, v1, v2, v3, add):
    """out[f : f + 4, p] = (v0, v1, v2, v3), or += when `add`."""
    if add:
        v0, v1, v2, v3 = v0 + out[f, p], v1 + out[f + 1, p], v2 + out[f + 2, p], v3 + out[f + 3, p]
    out[f, p], out[f + 1, p], out[f + 2, p], out[f + 3, p] = v0, v1, v2, v3


@njit(fastmath=FASTMATH, cache=True)
def _band_gemm(rows, count, wm, nf, kdim, kc, out, opos):
    """out[f, opos[m]] = <wm[f, :kdim], rows[m, :kdim]> for m < count, f < nf, one RB x RJ tile at a time.

    rows and wm have room for whole tiles (count rounded up to RC, a multiple of RB; nf to RJ); results outside
    the band are dropped. The reduction runs in chunks of kc (the first chunk stores, the others add) so that R's
    chunk and the tile's rows of W stay in L1 while W's chunk is reused across the band. A single filter (nf = 1)
    runs RC x 1 columns instead.
    """
    for k0 in range(0, kdim, kc):
        k1 = min(kdim, k0 + kc)
        add = k0 > 0
        if nf == 1:
            w0 = wm[0, k0:k1]
            for m in range(0, count, RC):
                s = _column(rows[m, k0:k1], rows[m + 1, k0:k1], rows[m + 2, k0:k1], rows[m + 3, k0:k1],
                            rows[m + 4, k0:k1], rows[m + 5, k0:k1], rows[m + 6, k0:k1], rows[m + 7, k0:k1], w0,
                            k1 - k0)
                for i in range(min(RC, count - m)):
                    out[0, opos[m + i]] = s[i] + (out[0, opos[m + i]] if add else 0)
            continue
        for f in range(0, nf, RJ):
            w0, w1, w2, w3 = wm[f, k0:k1], wm[f + 1, k0:k1], wm[f + 2, k0:k1], wm[f + 3, k0:k1]
            for m in range(0, count, RB):
                s = _tile(rows[m, k0:k1], rows[m + 1, k0:k1], w0, w1, w2, w3, k1 - k0)
                if m + RB <= count and f + RJ <= nf:
                    _put(out, f, opos[m], s[0], s[1], s[2], s[3], add)
                    _put(out, f, opos[m + 1], s[4], s[5], s[6], s[7], add)
                    continue
                for i in range(min(RB, count - m)):  # a tile over the edge of the band or of the filters
                    for j in range(min(RJ, nf - f)):
                        out[f + j, opos[m + i]] = s[i * RJ + j] + (out[f + j, opos[m + i]] if add else 0)


@njit(parallel=True, cache=True)
def _correlate(src, pad_t, pad_l, hp, wp, wmats, grids, bands, mpad, kc, fc, out, threads):
    """out[n, f, oy0 + oys * gy, ox0 + oxs * gx] = sum_{j, l, c} wmats[ph, f, (j * nl + l) * C + c]
    * padded_src[n, c, y0 + st * gy + j, x0 + st * gx + l] over every phase ph and its grid points (gy, gx).

    grids[ph] describes phase ph (columns NJ ... OXS); bands[b] = (phase, start, count) cuts the phases' grids
    into bands. The work items (block of fc filters, image, band) are split evenly over the threads in that
    order: a batch of one image still uses every core, and each thread keeps one block of W in L2 while it
    runs through its images (making each channels-last once per block).
    """
    n_img, chans = src.shape[0], src.shape[1]
    nf, wo = out.shape[1], out.shape[3]
    out3 = out.reshape(n_img, nf, out.shape[2] * wo)
    nb = bands.shape[0]
    items = -(-nf // fc) * n_img * nb
    buf = np.empty((threads, hp * wp * chans), src.dtype)
    rows = np.empty((threads, mpad, wmats.shape[2]), src.dtype)
    opos = np.empty((threads, mpad), np.int64)
    for t in prange(threads):
        current = -1
        for item in range(t * items // threads, (t + 1) * items // threads):
            image, b = divmod(item, nb)
            n, f0 = image % n_img, image // n_img * fc
            if image != current:
                _channels_last(src, n, pad_t, pad_l, buf[t], hp, wp)
                current = image
            ph, start, count = bands[b, 0], bands[b, 1], bands[b, 2]
            _expand(buf[t], wp, chans, grids[ph], start, count, rows[t], opos[t], wo)
            kdim = grids[ph, NJ] * grids[ph, NL] * chans
            _band_gemm(rows[t], count, wmats[ph, f0:], min(fc, nf - f0), kdim, kc, out3[n, f0:], opos[t])


def _run_correlation(src, pad_t, pad_l, wmats, grids, out):
    """Cut each phase's grid into bands and the filters into blocks, size the padded image to hold every
    window, and run `_correlate`."""
    itemsize, kdim = src.dtype.itemsize, wmats.shape[2]
    kc = kdim if kdim <= K_CHUNK + K_CHUNK // 2 else K_CHUNK
    band = max(RB, BAND_BYTES // (itemsize * kc) // RB * RB)
    fc = max(RJ, W_BYTES // (itemsize * kdim) // RJ * RJ)
    grids = np.array(grids, dtype=np.int64).reshape(-1, 11)
    bands = []
    for ph, g in enumerate(grids):
        points = g[GH] * g[GW]
        bands += [(ph, start, min(band, points - start)) for start in range(0, points, band)]
    bands = np.array(bands, dtype=np.int64).reshape(-1, 3)
    hp = int(max(grids[:, Y0] + grids[:, ST] * (grids[:, GH] - 1) + grids[:, NJ]))
    wp = int(max(grids[:, X0] + grids[:, ST] * (grids[:, GW] - 1) + grids[:, NL]))
    assert grids[:, [Y0, X0]].min() >= 0  # every window lies inside the hp x wp padded image
    mpad = -(-int(bands[:, 2].max()) // RC) * RC
    _correlate(src, pad_t, pad_l, hp, wp, wmats, grids, bands, mpad, kc, fc, out, get_num_threads())
    return out


def _check(*arrays):
    dtype = arrays[0].dtype
    assert dtype in (np.float32, np.float64), dtype
    assert all(a.dtype == dtype and a.ndim == 4 for a in arrays), [(a.dtype, a.shape) for a in arrays]


def conv2d_forward(x, w, stride, padding):
    """y[n, f, oh, ow] = sum_{c, i, j} w[f, c, i, j] * x[n, c, oh * stride + i - padding, ow * stride + j - padding]
    (zero outside x): PyTorch's conv2d without bias."""
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    _check(x, w)
    n, c, h, wd = x.shape
    f, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    assert w.shape[1] == c and stride >= 1 and padding >= 0
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    assert oh >= 1 and ow >= 1
    if c * kh * kw < DIRECT_KDIM:
        return conv_planes.direct_forward(x, w, stride, padding, np.empty((n, f, oh, ow), x.dtype))
    wmats = np.zeros((1, -(-f // RJ) * RJ, kh * kw * c), x.dtype)
    wmats[0, :f] = w.transpose(0, 2, 3, 1).reshape(f, kh * kw * c)
    grid = (kh, kw, oh, ow, 0, 0, stride, 0, 1, 0, 1)
    return _run_correlation(x, padding, padding, wmats, [grid], np.empty((n, f, oh, ow), x.dtype))


def conv2d_backward_input(gy, w, x_shape, stride, padding):
    """gx[n, c, h, v] = sum_{f, i, j} gy[n, f, oh, ow] * w[f, c, i, j] over h = oh * stride + i - padding,
    v = ow * stride + j - padding: the gradient of sum(gy * conv2d_forward(x, w)) with respect to x.

    Rows with (h + padding) % stride == a meet only the taps i = a, a + stride, ..., at the gy rows
    oh = (h + padding - i) / stride. So each phase (a, b) is a stride-1 correlation of gy with the flipped
    sub-kernel w[:, :, a::stride, b::stride], written to every stride-th row and column of gx. The correlation
    runs over zero-padded gy, so a NaN or inf in w also meets padding zeros and spreads to more pixels of gx than
    the reference's (0 * inf = NaN).
    """
    gy, w = np.ascontiguousarray(gy), np.ascontiguousarray(w)
    _check(gy, w)
    n, c, h, wd = x_shape
    f, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    s, p = stride, padding
    assert w.shape[1] == c and s >= 1 and p >= 0
    assert gy.shape == (n, f, (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1)
    if f == 0:  # no filter: nothing reaches x (and the blocking below would divide by a zero length)
        return np.zeros(x_shape, gy.dtype)
    grids, mats = [], []
    for a in range(min(s, kh)):
        for b in range(min(s, kw)):
            sub = w[:, :, a::s, b::s][:, :, ::-1, ::-1]
            nj, nl = sub.shape[2], sub.shape[3]
            i0, v0 = -((a - p) // s), -((b - p) // s)  # the first gy row and column reaching this phase
            gh, gw = (h - 1 + p - a) // s - i0 + 1, (wd - 1 + p - b) // s - v0 + 1
            if gh > 0 and gw > 0:
                grids.append([nj, nl, gh, gw, i0 - nj + 1, v0 - nl + 1, 1, s * i0 + a - p, s, s * v0 + b - p, s])
                mats.append(sub.transpose(1, 2, 3, 0).reshape(c, nj * nl * f))
    covered = sum(g[GH] * g[GW] for g in grids) == h * wd
    gx = (np.empty if covered else np.zeros)(x_shape, gy.dtype)  # rows no tap reaches (stride > kernel) are 0
    if not grids:
        return gx
    pad_t, pad_l = max(0, -min(g[Y0] for g in grids)), max(0, -min(g[X0] for g in grids))
    wmats = np.zeros((len(mats), -(-c // RJ) * RJ, max(m.shape[1] for m in mats)), gy.dtype)
    for g, m, wm in zip(grids, mats, wmats, strict=True):
        g[Y0] += pad_t
        g[X0] += pad_l
        wm[:c, : m.shape[1]] = m
    return _run_correlation(gy, pad_t, pad_l, wmats, grids, gx)


def conv2d_backward_weight(gy, x, w_shape, stride, padding):
    """gw[f, c, i, j] = sum_{n, oh, ow} gy[n, f, oh, ow] * x[n, c, oh * stride + i - padding, ow * stride + j - padding]
    (zero outside x): the gradient of sum(gy * conv2d_forward(x, w)) with respect to w, on flat phase planes
    (`conv_planes.weight_gradient`)."""
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)
    _check(gy, x)
    n, c, h, wd = x.shape
    f, kh, kw = w_shape[0], w_shape[2], w_shape[3]
    assert w_shape[1] == c and stride >= 1 and padding >= 0
    assert gy.shape == (n, f, (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1)
    if c == 0:  # an empty weight (and the blocking would divide by a zero plane size)
        return np.zeros(w_shape, gy.dtype)
    return conv_planes.weight_gradient(gy, x, w_shape, stride, padding)
