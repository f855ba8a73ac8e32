"""Cancellation-free log-moment-generating functions.

For a distribution w over candidates and exponents u with E_w[u] ≈ 0 (the caller centres them),

    log E_w[exp u] = log(1 + E_w[u] + E_w[φ(u)]),    φ(u) = e^u - 1 - u >= 0.

The caller's centre is exact up to rounding, and dropping the E_w[u] term only costs second-order terms in that
rounding, so ``log1p(E_w[φ(u)])`` is the quantity wanted. Every φ(u) is non-negative, so the weighted sum has no
cancellation; it is formed in log space (``logsumexp`` of log w + log φ(u)), so u up to 1e15 cannot overflow.
"""

from __future__ import annotations

import numpy as np

# Taylor coefficients of φ(u) / u² = Σ_{j>=2} u^(j-2) / j!, highest first, for Horner. For |u| < 0.1 the first
# omitted term is below 1e-16 of the sum.
_TAYLOR = tuple(1.0 / float(np.prod(np.arange(1, j + 1, dtype=np.float64))) for j in range(10, 1, -1))
_SMALL = 0.1
# Beyond this, (1 + u) e^-u < 1e-11 and log φ(u) = u + log1p(-(1 + u) e^-u) without forming e^u.
_LARGE = 30.0


def log_phi(u: np.ndarray) -> np.ndarray:
    """log(e^u - 1 - u) elementwise, accurate to a few ulps for any finite u (-inf at u = 0)."""
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    small = np.abs(u) < _SMALL
    large = u > _LARGE
    middle = ~(small | large)
    with np.errstate(divide="ignore"):
        us = u[small]
        h = np.full_like(us, _TAYLOR[0])
        for c in _TAYLOR[1:]:
            h = h * us + c
        out[small] = 2.0 * np.log(np.abs(us)) + np.log(h)
    um = u[middle]
    out[middle] = np.log(np.expm1(um) - um)
    ul = u[large]
    out[large] = ul + np.log1p(-(1.0 + ul) * np.exp(-ul))
    return out


def log1p_mean_phi(log_w: np.ndarray, u: np.ndarray) -> np.ndarray:
    """log1p(Σ_k w_k φ(u_k)) over the last axis, with log-weights ``log_w`` (-inf entries are ignored)."""
    terms = log_w + log_phi(u)
    top = np.max(terms, axis=-1)
    safe_top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        log_sum = safe_top + np.log(np.sum(np.exp(terms - safe_top[..., None]), axis=-1))
    # log1p(exp(L)) without overflow; exactly 0 when every φ is 0 (L = -inf).
    return np.logaddexp(0.0, log_sum)


def log1p_mean_phi_series(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """log1p(E_w[φ(u)]) for small exponents (max |u| < 0.1), shape (P, g, K) with weights ``w`` of shape (P, K).

    Same quantity as :func:`log1p_mean_phi`, in linear space: φ(u) = u² Σ_j u^(j-2)/j! by Horner, with just
    enough terms that the first omitted one is below 1e-17 of the sum. Every term is >= 0 (h(u) > 0.45 for
    |u| < 0.1), so the weighted sum loses nothing to cancellation.
    """
    top = float(np.max(np.abs(u))) if u.size else 0.0
    if top >= _SMALL:
        raise ValueError("log1p_mean_phi_series needs max |u| < 0.1")
    degree = 0  # number of Taylor terms after 1/2
    while degree < len(_TAYLOR) - 1 and top ** (degree + 1) * _TAYLOR[-degree - 2] > 1e-17 * 0.5:
        degree += 1
    coeffs = _TAYLOR[len(_TAYLOR) - 1 - degree :]
    h = np.full_like(u, coeffs[0])
    for c in coeffs[1:]:
        h *= u
        h += c
    h *= u
    h *= u
    return np.log1p(np.matmul(h, w[:, :, None])[:, :, 0])
