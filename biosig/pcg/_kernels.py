"""Numba kernels of the heart-sound segmenter. Private: call them through
:mod:`biosig.pcg.segment`, which validates and casts the inputs."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def hsmm_viterbi_kernel(log_emission, log_duration, log_survival, min_d, max_d):
    """Duration-dependent (hidden semi-Markov) Viterbi decoding of a cyclic chain of states.

    The states follow each other in the fixed order ``0 -> 1 -> ... -> K-1 -> 0`` (S1, systole,
    S2, diastole); a visit to state ``j`` lasts ``d`` frames with log-probability
    ``log_duration[j, d]`` for ``min_d[j] <= d <= max_d[j]``. The first and the last visit may be
    cut by the ends of the sequence: they are scored with the survival function
    ``log_survival[j, d] = log P(duration >= d)`` instead, so a recording may start or end in
    the middle of any state (Springer et al. 2016, section II-E).

    Parameters
    ----------
    log_emission : float64 [K, T]
        Log-likelihood (up to a per-frame constant) of each frame under each state.
    log_duration, log_survival : float64 [K, D + 1]
        Indexed by duration in frames; ``D >= max(max_d)``.
    min_d, max_d : int64 [K]
        Allowed durations of a complete visit, in frames (``1 <= min_d <= max_d <= D``).

    Returns
    -------
    states : int64 [T]
        The most likely state of every frame, in ``0 .. K-1``.
    score : float
        Log-probability of that path (joint with the observations, up to the per-frame
        constants of the emissions).
    """
    k_states, n = log_emission.shape
    neg = -np.inf
    cum = np.zeros((k_states, n + 1))
    for j in range(k_states):
        for t in range(n):
            cum[j, t + 1] = cum[j, t] + log_emission[j, t]
    log_start = -np.log(k_states)
    delta = np.full((n, k_states), neg)
    back = np.zeros((n, k_states), dtype=np.int64)
    for t in range(n):
        for j in range(k_states):
            p = (j + k_states - 1) % k_states
            best = neg
            bd = 0
            if t + 1 <= max_d[j]:  # first visit, cut on the left: frames 0..t
                best = log_start + log_survival[j, t + 1] + cum[j, t + 1]
                bd = t + 1
            hi = min(max_d[j], t)
            for d in range(min_d[j], hi + 1):
                prev = delta[t - d, p]
                if prev == neg:
                    continue
                s = prev + log_duration[j, d] + cum[j, t + 1] - cum[j, t + 1 - d]
                if s > best:
                    best = s
                    bd = d
            delta[t, j] = best
            back[t, j] = bd
    # last visit, possibly cut on the right: frames n-d .. n-1
    best = neg
    bj = 0
    bd = 0
    for j in range(k_states):
        if delta[n - 1, j] > best:  # a complete last visit
            best = delta[n - 1, j]
            bj = j
            bd = -1
        p = (j + k_states - 1) % k_states
        for d in range(1, min(max_d[j], n) + 1):
            if d == n:
                s = log_start + log_survival[j, d] + cum[j, n]
            else:
                prev = delta[n - 1 - d, p]
                if prev == neg:
                    continue
                s = prev + log_survival[j, d] + cum[j, n] - cum[j, n - d]
            if s > best:
                best = s
                bj = j
                bd = d
    states = np.zeros(n, dtype=np.int64)
    score = best
    t = n - 1
    j = bj
    if bd > 0:  # the cut last visit
        for i in range(n - bd, n):
            states[i] = j
        t = n - 1 - bd
        j = (j + k_states - 1) % k_states
    while t >= 0:
        d = back[t, j]
        if d <= 0:  # unreachable (no admissible path); label the rest with this state
            d = t + 1
        for i in range(t - d + 1, t + 1):
            states[i] = j
        t -= d
        j = (j + k_states - 1) % k_states
    return states, score


@njit(cache=True)
def match_centres_kernel(ref, det, tolerance):
    """One-to-one matching of two sorted arrays of event times within ``tolerance``.

    Pairs are formed closest first (a greedy matching on distance, which for events on a line
    that are further apart than twice the tolerance is the optimal one).

    Parameters
    ----------
    ref, det : float64 [n_ref], [n_det]
        Increasing times (seconds).
    tolerance : float
        Largest allowed ``|ref - det|``.

    Returns
    -------
    n_matched : int
    """
    n_ref = ref.shape[0]
    n_det = det.shape[0]
    # candidate pairs, sorted by distance
    cap = 0
    j0 = 0
    for i in range(n_ref):
        while j0 < n_det and det[j0] < ref[i] - tolerance:
            j0 += 1
        j = j0
        while j < n_det and det[j] <= ref[i] + tolerance:
            cap += 1
            j += 1
    dist = np.empty(cap)
    pi = np.empty(cap, dtype=np.int64)
    pj = np.empty(cap, dtype=np.int64)
    c = 0
    j0 = 0
    for i in range(n_ref):
        while j0 < n_det and det[j0] < ref[i] - tolerance:
            j0 += 1
        j = j0
        while j < n_det and det[j] <= ref[i] + tolerance:
            dist[c] = abs(det[j] - ref[i])
            pi[c] = i
            pj[c] = j
            c += 1
            j += 1
    order = np.argsort(dist, kind="mergesort")
    used_r = np.zeros(n_ref, dtype=np.bool_)
    used_d = np.zeros(n_det, dtype=np.bool_)
    matched = 0
    for k in order:
        if not used_r[pi[k]] and not used_d[pj[k]]:
            used_r[pi[k]] = True
            used_d[pj[k]] = True
            matched += 1
    return matched
