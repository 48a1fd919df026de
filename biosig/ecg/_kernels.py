"""Numba kernels of the QRS detector. Private: call them through :mod:`biosig.ecg.peaks`, which
validates and casts the inputs."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def energy_kernel(bp, width):
    """Five-point derivative, squaring and *centred* moving-window integration.

    Parameters
    ----------
    bp : float64 [n]
        Band-passed ECG.
    width : int >= 1
        Integration window in samples.

    Returns
    -------
    slope : float64 [n]
        ``|d bp / dn|`` from the five-point derivative ``(2x[n+2] + x[n+1] - x[n-1] - 2x[n-2])/8``
        (centred, so no delay).
    mwi : float64 [n]
        Mean of ``slope**2`` over ``width`` samples centred on ``n``.
    """
    n = bp.shape[0]
    slope = np.zeros(n)
    sq = np.zeros(n)
    for i in range(2, n - 2):
        d = (2.0 * bp[i + 2] + bp[i + 1] - bp[i - 1] - 2.0 * bp[i - 2]) * 0.125
        slope[i] = abs(d)
        sq[i] = d * d
    mwi = np.zeros(n)
    half = width // 2
    acc = 0.0
    # window [i - half, i - half + width)
    for j in range(0, min(n, width - half)):
        acc += sq[j]
    for i in range(n):
        mwi[i] = acc / width
        add = i - half + width
        sub = i - half
        if add < n:
            acc += sq[add]
        if sub >= 0:
            acc -= sq[sub]
    return slope, mwi


@njit(cache=True)
def _local_slope(slope, i, half):
    lo = max(0, i - half)
    hi = min(slope.shape[0], i + half + 1)
    m = 0.0
    for k in range(lo, hi):
        if slope[k] > m:
            m = slope[k]
    return m


@njit(cache=True)
def _push_rr(rr_buf, n_rr, rr):
    """Add an RR interval (samples) to the ring of the last 8; return the new count and the
    mean of the intervals held."""
    rr_buf[n_rr % 8] = rr
    n_rr += 1
    m = min(n_rr, 8)
    total = 0.0
    for q in range(m):
        total += rr_buf[q]
    return n_rr, total / m


@njit(cache=True)
def detect_kernel(mwi, slope, refractory, twave, slope_half, init_len, searchback_factor,
                  twave_ratio):
    """Adaptive-threshold peak classification of the integrated energy (Pan & Tompkins 1985,
    Hamilton & Tompkins 1986) with search-back and T-wave discrimination.

    Parameters
    ----------
    mwi, slope : float64 [n]
        Integrated energy and absolute slope from :func:`energy_kernel`.
    refractory : int
        Samples after a QRS complex within which no other complex can occur.
    twave : int
        Samples after a QRS complex within which a peak must pass the slope test.
    slope_half : int
        Half-width in samples of the window used for the maximum slope of a peak.
    init_len : int
        Samples used to initialise the signal and noise levels.
    searchback_factor : float
        Search back for a missed beat when no beat came for this many average RR intervals.
    twave_ratio : float
        A peak within ``twave`` of the last QRS whose slope is below this fraction of the last
        QRS's slope is a T wave.

    Returns
    -------
    int64 [n_beats]
        Sample indices of the integrated-energy peaks classified as QRS complexes.
    """
    n = mwi.shape[0]
    out = np.empty(n // max(refractory, 1) + 2, dtype=np.int64)
    nq = 0
    if n < 3:
        return out[:0]
    # initial levels: robust to a noisy start (median of one-second maxima)
    init_len = max(3, min(n, init_len))
    sec = max(1, refractory * 5)
    nblk = max(1, init_len // sec)
    blk = np.empty(nblk)
    for b in range(nblk):
        lo = b * sec
        hi = min(n, lo + sec)
        m = 0.0
        for k in range(lo, hi):
            if mwi[k] > m:
                m = mwi[k]
        blk[b] = m
    spk = 0.5 * np.median(blk)
    npk = 0.0
    for k in range(init_len):
        npk += mwi[k]
    npk = 0.5 * npk / init_len
    # RR average of the last 8 beats (samples)
    rr_buf = np.zeros(8)
    n_rr = 0
    rr_avg = 0.0
    last = -1
    last_amp = 0.0
    last_slope = 0.0
    # noise peaks since the last QRS (search-back candidates)
    cap = 256
    c_idx = np.empty(cap, dtype=np.int64)
    c_amp = np.empty(cap)
    c_slope = np.empty(cap)
    nc = 0

    i = 1
    while i < n:
        is_peak = False
        if i < n - 1:
            is_peak = mwi[i] > mwi[i - 1] and mwi[i] >= mwi[i + 1]
        a = mwi[i] if is_peak else 0.0
        # search-back: a beat is overdue, take the largest candidate above the lower threshold
        while (last >= 0 and n_rr >= 1 and nc > 0
               and (i - last) > searchback_factor * rr_avg):
            thr1 = npk + 0.25 * (spk - npk)
            thr2 = 0.5 * thr1
            best = -1
            best_amp = thr2
            for c in range(nc):
                if c_idx[c] - last >= refractory and i - c_idx[c] >= refractory \
                        and c_amp[c] > best_amp:
                    if c_idx[c] - last < twave and c_slope[c] < twave_ratio * last_slope:
                        continue
                    best = c
                    best_amp = c_amp[c]
            if best < 0:
                break
            k = c_idx[best]
            spk = 0.25 * c_amp[best] + 0.75 * spk
            n_rr, rr_avg = _push_rr(rr_buf, n_rr, k - last)
            out[nq] = k
            nq += 1
            last = k
            last_amp = c_amp[best]
            last_slope = c_slope[best]
            # keep only the candidates after the accepted one
            nn = 0
            for c in range(nc):
                if c_idx[c] > k:
                    c_idx[nn] = c_idx[c]
                    c_amp[nn] = c_amp[c]
                    c_slope[nn] = c_slope[c]
                    nn += 1
            nc = nn
        if not is_peak:
            i += 1
            continue
        s = _local_slope(slope, i, slope_half)
        if last >= 0 and i - last < refractory:
            # the same complex: keep the larger peak
            if a > last_amp:
                out[nq - 1] = i
                if n_rr > 0:
                    rr_buf[(n_rr - 1) % 8] += i - last
                last = i
                last_amp = a
                last_slope = max(s, last_slope)
            i += 1
            continue
        thr1 = npk + 0.25 * (spk - npk)
        if a > thr1:
            if last >= 0 and i - last < twave and s < twave_ratio * last_slope:
                npk = 0.125 * a + 0.875 * npk  # T wave
            else:
                spk = 0.125 * a + 0.875 * spk
                if last >= 0:
                    n_rr, rr_avg = _push_rr(rr_buf, n_rr, i - last)
                out[nq] = i
                nq += 1
                last = i
                last_amp = a
                last_slope = s
                nc = 0
        else:
            npk = 0.125 * a + 0.875 * npk
            if nc < cap:
                c_idx[nc] = i
                c_amp[nc] = a
                c_slope[nc] = s
                nc += 1
        i += 1
    return out[:nq].copy()


@njit(cache=True)
def locate_raw_kernel(x, centers, half, edge, min_distance):
    """Move each detection to the R peak of the raw ECG and drop near-duplicates.

    Within ``centre +- half`` the baseline is the straight line between the means of the
    ``edge`` samples just outside the window (baseline wander is locally linear); the R peak is
    the largest absolute deviation from it. A detection landing within ``min_distance`` of the
    previous one is merged into it (the larger deviation wins).

    Parameters
    ----------
    x : float64 [n]
        ECG lead.
    centers : int64 [k]
        Increasing detection indices.
    half, edge, min_distance : int
        Samples.

    Returns
    -------
    int64 [<= k]
    """
    n = x.shape[0]
    out = np.empty(centers.shape[0], dtype=np.int64)
    amp = np.empty(centers.shape[0])
    m = 0
    for j in range(centers.shape[0]):
        c = centers[j]
        lo = max(0, c - half)
        hi = min(n - 1, c + half)
        l0 = max(0, lo - edge)
        h1 = min(n, hi + edge + 1)
        left = 0.0
        for k in range(l0, lo + 1):
            left += x[k]
        left /= lo + 1 - l0
        right = 0.0
        for k in range(hi, h1):
            right += x[k]
        right /= h1 - hi
        span = max(1, hi - lo)
        best = c
        bv = -1.0
        for k in range(lo, hi + 1):
            v = abs(x[k] - (left + (right - left) * (k - lo) / span))
            if v > bv:
                bv = v
                best = k
        if m > 0 and best - out[m - 1] < min_distance:
            if bv > amp[m - 1]:
                out[m - 1] = best
                amp[m - 1] = bv
            continue
        out[m] = best
        amp[m] = bv
        m += 1
    return out[:m].copy()
