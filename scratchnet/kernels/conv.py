"""Numba CPU kernels for conv2d: a BLAS-free direct convolution built on one register-blocked micro-kernel.

Every pass is phrased as dot products over one long contiguous axis, because that is the form LLVM's loop
vectorizer turns into vector FMAs with all accumulators kept in registers (shared/specs/kernel-performance.md,
lesson 2: a block of RB x RJ scalar sums over one contiguous innermost loop):

- forward: the receptive field of each output position in a band of a few dozen positions is copied into one
  row of a small matrix R (a "row expansion": im2col of one band only, so it stays in L1). Copied from a
  channels-last copy of the image, a row is KH contiguous runs of KW * C values. Then y[f, p] = <W[f], R[p]>.
  A short receptive field (few input channels, as at a network's input, or a 1x1 conv of fewer than 64) is too
  short a dot product to vectorize;
  there the "direct" path sums each tap's shifted flat image plane, scaled by the weight, into the output plane.
- backward-input: the transposed convolution, run by the same engine on gy with flipped, transposed weights.
  A stride s splits it into s * s phases, each a stride-1 correlation with a sub-kernel, so no inserted zero is
  ever multiplied.
- backward-weight: gw[f, c, i, j] = <gy[f], x[c] shifted by (i, j)>, one dot product over flat padded planes.

Loop variables are bare `range` variables over C-contiguous views (lesson 3: an offset index `base + k` keeps
NumPy's negative-index wrap-around and turns the loop into gathers); workspaces are allocated once per call,
one per thread (lesson 4). fastmath is limited to reassociation and FMA contraction, which the vectorized
reductions need, so results match the NumPy reference up to float rounding and inf/NaN still propagate.
"""

import numpy as np
from numba import get_num_threads, njit, prange

# The micro-kernel's tile: RB rows of one operand against RJ rows of the other. Eight accumulators cover the
# two FMA pipelines' latency and, with the six loaded vectors, fit AVX2's sixteen registers. A 3 x 4 tile
# (twelve accumulators and seven loads) does not: LLVM spilled two accumulators to the stack and shuffled the
# rest between registers on every iteration, which ran each pass 1.6-1.9x slower (lesson 2 of the spec).
RB, RJ = 2, 4
# One filter alone (the input gradient of a one-channel image: the transposed conv has one output channel) runs
# RC rows of R against it instead: eight sums for nine loads a step, where the RB x RJ tile would spend three of
# its four columns on padding rows of W (4x the work).
RC = 8
# Receptive fields of fewer values than DIRECT_KDIM run the direct forward. Measured crossover: one input channel
# 3x3 ran 2.3x faster direct, three channels 2.8x, eight channels (72 values) the same, sixteen 1.4x slower.
DIRECT_KDIM = 64
DIRECT_CHUNK = 1024  # positions of the output plane per pass of the direct path: four rows of sums stay in L1
FASTMATH = {"reassoc", "contract"}
# Working-set sizes: a chunk of the reduction axis and a band of R sized for L1; the weight gradient's phase
# planes sized for L2, with enough images side by side that each dot product is long.
K_CHUNK = 512
BAND_BYTES = 48 * 1024
W_BYTES = 512 * 1024
PLANE_BYTES = 1024 * 1024
DOT_LENGTH = 512
# Columns of a phase descriptor (the `grids` rows of `_correlate`).
NJ, NL, GH, GW, Y0, X0, ST, OY0, OYS, OX0, OXS = range(11)


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile(a0, a1, b0, b1, b2, b3, n):
    """The 2 x 4 block of dot products <a_i[:n], b_j[:n]>: eight scalar sums over one contiguous loop, which
    LLVM vectorizes into eight vector accumulators. Inlined, so the views passed in cost nothing."""
    z = a0.dtype.type(0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    for k in range(n):
        u0, u1 = a0[k], a1[k]
        v0, v1, v2, v3 = b0[k], b1[k], b2[k], b3[k]
        s00 += u0 * v0
        s01 += u0 * v1
        s02 += u0 * v2
        s03 += u0 * v3
        s10 += u1 * v0
        s11 += u1 * v1
        s12 += u1 * v2
        s13 += u1 * v3
    return (s00, s01, s02, s03, s10, s11, s12, s13)


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _column(a0, a1, a2, a3, a4, a5, a6, a7, b, n):
    """The 8 x 1 block of dot products <a_i[:n], b[:n]>, for a single row b."""
    z = b.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    for k in range(n):
        v = b[k]
        s0 += a0[k] * v
        s1 += a1[k] * v
        s2 += a2[k] * v
        s3 += a3[k] * v
        s4 += a4[k] * v
        s5 += a5[k] * v
        s6 += a6[k] * v
        s7 += a7[k] * v
    return (s0, s1, s2, s3, s4, s5, s6, s7)


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
        hq, wq = oh + (kh - 1) // stride, ow + (kw - 1) // stride
        wt = np.zeros((-(-f // RJ) * RJ, c * kh * kw), x.dtype)
        wt[:f] = w.reshape(f, c * kh * kw)
        out = np.empty((n, f, oh, ow), x.dtype)
        shifts = _tap_shifts(c, kh, kw, stride, wq)
        return _direct(x, wt, stride, padding, kh, kw, shifts, hq, wq, DIRECT_CHUNK, out, get_num_threads())
    wmats = np.zeros((1, -(-f // RJ) * RJ, kh * kw * c), x.dtype)
    wmats[0, :f] = w.transpose(0, 2, 3, 1).reshape(f, kh * kw * c)
    grid = (kh, kw, oh, ow, 0, 0, stride, 0, 1, 0, 1)
    return _run_correlation(x, padding, padding, wmats, [grid], np.empty((n, f, oh, ow), x.dtype))


def conv2d_backward_input(gy, w, x_shape, stride, padding):
    """gx[n, c, h, v] = sum_{f, i, j} gy[n, f, oh, ow] * w[f, c, i, j] over h = oh * stride + i - padding,
    v = ow * stride + j - padding: the gradient of sum(gy * conv2d_forward(x, w)) with respect to x.

    Rows with (h + padding) % stride == a meet only the taps i = a, a + stride, ..., at the gy rows
    oh = (h + padding - i) / stride. So each phase (a, b) is a stride-1 correlation of gy with the flipped
    sub-kernel w[:, :, a::stride, b::stride], written to every stride-th row and column of gx.
    """
    gy, w = np.ascontiguousarray(gy), np.ascontiguousarray(w)
    _check(gy, w)
    n, c, h, wd = x_shape
    f, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    s, p = stride, padding
    assert w.shape[1] == c and s >= 1 and p >= 0
    assert gy.shape == (n, f, (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1)
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


def conv2d_backward_weight(gy, x, w_shape, stride, padding):
    """gw[f, c, i, j] = sum_{n, oh, ow} gy[n, f, oh, ow] * x[n, c, oh * stride + i - padding, ow * stride + j - padding]
    (zero outside x): the gradient of sum(gy * conv2d_forward(x, w)) with respect to w.

    Split into its stride phases, the image meets each tap in one phase plane, shifted (`_tap_shifts`). Laid out
    flat on the phase grid (width wq, hq rows per image), gy and the phase plane are then two contiguous vectors
    and the tap one dot product. The padding of gy's grid is zero, so the values
    it meets add nothing (unless x holds inf or NaN, which then spreads to more taps than the reference's).
    """
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)
    _check(gy, x)
    n, c, h, wd = x.shape
    f, kh, kw = w_shape[0], w_shape[2], w_shape[3]
    s, p = stride, padding
    assert w_shape[1] == c and s >= 1 and p >= 0
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    assert gy.shape == (n, f, oh, ow)
    hq, wq = oh + (kh - 1) // s, ow + (kw - 1) // s
    image_bytes = c * min(s, kh) * min(s, kw) * hq * wq * x.dtype.itemsize
    group = max(1, min(-(-DOT_LENGTH // (hq * wq)), PLANE_BYTES // image_bytes, -(-n // get_num_threads())))
    shifts = _tap_shifts(c, kh, kw, s, wq, multiple=RB)
    # the longest dot product, from the largest shift, ends inside the plane: group * hq * wq + (kw - 1) // s
    plane_len = group * hq * wq + (kw - 1) // s
    acc = _weight_grad(gy, x, s, p, kh, kw, shifts, group, hq, wq, -(-f // RJ) * RJ, plane_len, get_num_threads())
    return np.ascontiguousarray(acc[:f, : c * kh * kw]).reshape(w_shape)
