"""numba kernels for second-order-section IIR filtering and windowed sums.

Private: call them through :mod:`biosig.dsp.filters`, which validates, casts to float64 and makes
arrays contiguous.

Layout. Channels are taken ``LANES`` (8) at a time and a tile of samples is transposed into a
``(tile, 8)`` buffer, so one time step touches 8 independent recursions held in registers. Each
second-order section runs over the whole tile before the next (the tile stays in L2), and with
LLVM's SLP vectoriser the 8 lanes become AVX vector operations. Blocks of 8 channels run in
parallel threads. The per-sample arithmetic is exactly scipy's ``_sosfilt`` (direct form II
transposed, same operation order, no fused multiply-add), so results equal scipy's bit for bit.

numba leaves the SLP vectoriser off by default; :func:`slp_vectorize` switches it on while these
kernels compile (its setting is read when a function is compiled, so nothing else is affected).
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

LANES = 8
TILE = 1024


@contextmanager
def slp_vectorize():
    """Enable numba's SLP vectoriser for kernels compiled inside this block."""
    old = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        numba.config.SLP_VECTORIZE = old


@njit(cache=True, inline="always")
def _section8(buf, start, m, step, b0, b1, b2, a1, a2, z):
    """Run one section over ``m`` rows of ``buf`` (rows, 8) from ``start`` by ``step`` (+1/-1),
    in place; ``z`` (2, 8) holds the state of the 8 lanes."""
    p0 = z[0, 0]; p1 = z[0, 1]; p2 = z[0, 2]; p3 = z[0, 3]  # noqa: E702
    p4 = z[0, 4]; p5 = z[0, 5]; p6 = z[0, 6]; p7 = z[0, 7]  # noqa: E702
    q0 = z[1, 0]; q1 = z[1, 1]; q2 = z[1, 2]; q3 = z[1, 3]  # noqa: E702
    q4 = z[1, 4]; q5 = z[1, 5]; q6 = z[1, 6]; q7 = z[1, 7]  # noqa: E702
    t = start
    for _ in range(m):
        x0 = buf[t, 0]; x1 = buf[t, 1]; x2 = buf[t, 2]; x3 = buf[t, 3]  # noqa: E702
        x4 = buf[t, 4]; x5 = buf[t, 5]; x6 = buf[t, 6]; x7 = buf[t, 7]  # noqa: E702
        y0 = b0 * x0 + p0; y1 = b0 * x1 + p1; y2 = b0 * x2 + p2; y3 = b0 * x3 + p3  # noqa: E702
        y4 = b0 * x4 + p4; y5 = b0 * x5 + p5; y6 = b0 * x6 + p6; y7 = b0 * x7 + p7  # noqa: E702
        p0 = b1 * x0 - a1 * y0 + q0; p1 = b1 * x1 - a1 * y1 + q1  # noqa: E702
        p2 = b1 * x2 - a1 * y2 + q2; p3 = b1 * x3 - a1 * y3 + q3  # noqa: E702
        p4 = b1 * x4 - a1 * y4 + q4; p5 = b1 * x5 - a1 * y5 + q5  # noqa: E702
        p6 = b1 * x6 - a1 * y6 + q6; p7 = b1 * x7 - a1 * y7 + q7  # noqa: E702
        q0 = b2 * x0 - a2 * y0; q1 = b2 * x1 - a2 * y1; q2 = b2 * x2 - a2 * y2  # noqa: E702
        q3 = b2 * x3 - a2 * y3; q4 = b2 * x4 - a2 * y4; q5 = b2 * x5 - a2 * y5  # noqa: E702
        q6 = b2 * x6 - a2 * y6; q7 = b2 * x7 - a2 * y7  # noqa: E702
        buf[t, 0] = y0; buf[t, 1] = y1; buf[t, 2] = y2; buf[t, 3] = y3  # noqa: E702
        buf[t, 4] = y4; buf[t, 5] = y5; buf[t, 6] = y6; buf[t, 7] = y7  # noqa: E702
        t += step
    z[0, 0] = p0; z[0, 1] = p1; z[0, 2] = p2; z[0, 3] = p3  # noqa: E702
    z[0, 4] = p4; z[0, 5] = p5; z[0, 6] = p6; z[0, 7] = p7  # noqa: E702
    z[1, 0] = q0; z[1, 1] = q1; z[1, 2] = q2; z[1, 3] = q3  # noqa: E702
    z[1, 4] = q4; z[1, 5] = q5; z[1, 6] = q6; z[1, 7] = q7  # noqa: E702


@njit(cache=True)
def _run_sections1(sos, buf, z, start, m, step):
    """All sections over ``m`` samples of the 1-D ``buf`` (a lone channel), sample by sample
    (sections of one sample overlap in the pipeline); ``z`` (n_sec, 2) is the state."""
    n_sec = sos.shape[0]
    t = start
    for _ in range(m):
        x = buf[t]
        for s in range(n_sec):
            y = sos[s, 0] * x + z[s, 0]
            z[s, 0] = sos[s, 1] * x - sos[s, 4] * y + z[s, 1]
            z[s, 1] = sos[s, 2] * x - sos[s, 5] * y
            x = y
        buf[t] = x
        t += step


@njit(cache=True, inline="always")
def _run_sections(sos, buf, z, start, m, step):
    """All sections over ``m`` rows from ``start`` by ``step``, tile by tile.

    ``z`` (n_sec, 2, 8) is the state."""
    n_sec = sos.shape[0]
    done = 0
    while done < m:
        k = min(TILE, m - done)
        s0 = start + step * done
        for s in range(n_sec):
            _section8(buf, s0, k, step, sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5],
                      z[s])
        done += k


@njit(cache=True, parallel=True)
def sosfilt_2d(sos, x, zi):
    """Filter each row of ``x`` (n_sig, n); ``zi`` (n_sig, n_sec, 2) is updated in place to the
    final state. Returns y (n_sig, n)."""
    n_sig, n = x.shape
    n_sec = sos.shape[0]
    y = np.empty_like(x)
    if n_sig == 1:  # a lone channel: scalar recursion, no idle lanes
        row = x[0].copy()
        z1 = zi[0].copy()
        _run_sections1(sos, row, z1, 0, n, 1)
        y[0] = row
        zi[0] = z1
        return y
    n_blocks = (n_sig + LANES - 1) // LANES
    for blk in prange(n_blocks):
        c0 = blk * LANES
        w = min(LANES, n_sig - c0)
        z = np.zeros((n_sec, 2, LANES))
        for k in range(w):
            for s in range(n_sec):
                z[s, 0, k] = zi[c0 + k, s, 0]
                z[s, 1, k] = zi[c0 + k, s, 1]
        buf = np.zeros((TILE, LANES))
        for a in range(0, n, TILE):
            m = min(TILE, n - a)
            for t in range(m):  # time outer, lanes inner: 8 read streams, contiguous writes
                for k in range(w):
                    buf[t, k] = x[c0 + k, a + t]
            _run_sections(sos, buf, z, 0, m, 1)
            for t in range(m):
                for k in range(w):
                    y[c0 + k, a + t] = buf[t, k]
        for k in range(w):
            for s in range(n_sec):
                zi[c0 + k, s, 0] = z[s, 0, k]
                zi[c0 + k, s, 1] = z[s, 1, k]
    return y


@njit(cache=True, inline="always")
def _ext_value(x, r, e, padlen, mode):
    """Sample ``e`` of row ``r`` of ``x`` extended by ``padlen`` samples at both ends
    (``mode`` 1: odd extension, 2: even, 3: constant)."""
    n = x.shape[1]
    if e < padlen:
        if mode == 3:
            return x[r, 0]
        v = x[r, padlen - e]
        return 2.0 * x[r, 0] - v if mode == 1 else v
    if e < padlen + n:
        return x[r, e - padlen]
    i = e - padlen - n
    if mode == 3:
        return x[r, n - 1]
    v = x[r, n - 2 - i]
    return 2.0 * x[r, n - 1] - v if mode == 1 else v


@njit(cache=True, inline="always")
def _fill_extended(x, c0, w, buf, e0, m, padlen, mode):
    """``buf[e0:e0 + m, :w]`` = extended samples ``e0 .. e0 + m`` of rows ``c0 .. c0 + w``
    (used by the lone-channel path)."""
    for e in range(e0, e0 + m):
        for k in range(w):
            buf[e, k] = _ext_value(x, c0 + k, e, padlen, mode)


@njit(cache=True, inline="always")
def _tile_from_x(x, c0, w, tile, a, m, padlen, mode):
    """``tile[:m, :w]`` = extended samples ``a .. a + m`` of rows ``c0 .. c0 + w``."""
    n = x.shape[1]
    lo = max(a, padlen)
    hi = min(a + m, padlen + n)
    for e in range(a, min(lo, a + m)):
        for k in range(w):
            tile[e - a, k] = _ext_value(x, c0 + k, e, padlen, mode)
    for e in range(lo, hi):  # time outer, lanes inner: 8 read streams, contiguous writes
        for k in range(w):
            tile[e - a, k] = x[c0 + k, e - padlen]
    for e in range(max(hi, a), a + m):
        for k in range(w):
            tile[e - a, k] = _ext_value(x, c0 + k, e, padlen, mode)


@njit(cache=True, inline="always")
def _tile_store(tile, a, m, y, c0, w, ends, padlen):
    """Store ``tile[:m]`` as extended samples ``a .. a + m``: the padding into ``ends``
    (2 * padlen, LANES), the signal into rows ``c0 .. c0 + w`` of ``y``."""
    n = y.shape[1]
    for e in range(a, a + m):
        if e < padlen:
            for k in range(LANES):
                ends[e, k] = tile[e - a, k]
        elif e < padlen + n:
            for k in range(w):
                y[c0 + k, e - padlen] = tile[e - a, k]
        else:
            for k in range(LANES):
                ends[e - n, k] = tile[e - a, k]


@njit(cache=True, inline="always")
def _tile_load(tile, a, m, y, c0, w, ends, padlen):
    """Inverse of :func:`_tile_store`."""
    n = y.shape[1]
    for e in range(a, a + m):
        if e < padlen:
            for k in range(LANES):
                tile[e - a, k] = ends[e, k]
        elif e < padlen + n:
            for k in range(w):
                tile[e - a, k] = y[c0 + k, e - padlen]
        else:
            for k in range(LANES):
                tile[e - a, k] = ends[e - n, k]


@njit(cache=True, parallel=True)
def sosfiltfilt_2d(sos, x, zi_unit, padlen, mode):
    """Zero-phase filtering of each row of ``x`` (n_sig, n), as scipy's ``sosfiltfilt``.

    The signal is extended by ``padlen`` samples at both ends (``mode`` 1: odd extension,
    2: even, 3: constant), filtered forward from the steady state ``zi_unit * first``, then
    backward from ``zi_unit * last``, and trimmed. The forward result is kept in the output
    array itself (the padding in a small side buffer) and every pass goes through one
    cache-resident tile, so memory sees: read input, write output, read and write output.
    """
    n_sig, n = x.shape
    n_sec = sos.shape[0]
    n_ext = n + 2 * padlen
    y = np.empty_like(x)
    if n_sig == 1:  # a lone channel: scalar recursion, no idle lanes
        ext = np.empty((n_ext, 1))
        _fill_extended(x, 0, 1, ext, 0, n_ext, padlen, mode)
        buf1 = ext.reshape(n_ext)
        z1 = np.empty((n_sec, 2))
        for s in range(n_sec):
            z1[s, 0] = zi_unit[s, 0] * buf1[0]
            z1[s, 1] = zi_unit[s, 1] * buf1[0]
        _run_sections1(sos, buf1, z1, 0, n_ext, 1)
        for s in range(n_sec):
            z1[s, 0] = zi_unit[s, 0] * buf1[n_ext - 1]
            z1[s, 1] = zi_unit[s, 1] * buf1[n_ext - 1]
        _run_sections1(sos, buf1, z1, n_ext - 1, n_ext, -1)
        y[0] = buf1[padlen:padlen + n]
        return y
    n_blocks = (n_sig + LANES - 1) // LANES
    for blk in prange(n_blocks):
        c0 = blk * LANES
        w = min(LANES, n_sig - c0)
        tile = np.zeros((TILE, LANES))
        ends = np.zeros((max(1, 2 * padlen), LANES))
        z = np.zeros((n_sec, 2, LANES))
        for k in range(w):
            first = _ext_value(x, c0 + k, 0, padlen, mode)
            for s in range(n_sec):
                z[s, 0, k] = zi_unit[s, 0] * first
                z[s, 1, k] = zi_unit[s, 1] * first
        for a in range(0, n_ext, TILE):  # forward
            m = min(TILE, n_ext - a)
            _tile_from_x(x, c0, w, tile, a, m, padlen, mode)
            _run_sections(sos, tile, z, 0, m, 1)
            _tile_store(tile, a, m, y, c0, w, ends, padlen)
        last_tile = tile[(n_ext - 1) % TILE]  # the forward result's last sample
        for k in range(LANES):
            last = last_tile[k]
            for s in range(n_sec):
                z[s, 0, k] = zi_unit[s, 0] * last
                z[s, 1, k] = zi_unit[s, 1] * last
        b = n_ext
        while b > 0:  # backward
            m = min(TILE, b)
            a = b - m
            _tile_load(tile, a, m, y, c0, w, ends, padlen)
            _run_sections(sos, tile, z, m - 1, m, -1)
            _tile_store(tile, a, m, y, c0, w, ends, padlen)
            b = a
    return y


@njit(cache=True, parallel=True)
def moving_sum_2d(x, width):
    """Trailing moving sum over ``width`` samples of each row (the first outputs sum what exists).
    Running sum, recomputed exactly every 65536 samples to bound floating-point drift."""
    n_sig, n = x.shape
    y = np.empty_like(x)
    for r in prange(n_sig):
        acc = 0.0
        for t in range(n):
            if t % 65536 == 0 and t >= width:
                acc = 0.0
                for j in range(t - width + 1, t + 1):
                    acc += x[r, j]
            else:
                acc += x[r, t]
                if t >= width:
                    acc -= x[r, t - width]
            y[r, t] = acc
    return y
