"""The fine-tuning auction on a fixed candidate set: welfare-maximising target and truthful payments.

Pure numpy/scipy (no Django). The mathematics is in ``docs/auction.md`` and the shared mechanism notes:

    q*(k|x)  ∝ q0(k|x) exp(R(x, k) / λ),         R = Σ_i w_i r_i
    ASW      = λ Σ_x μ(x) log Z(x)
    p_i      = λ Σ_x μ(x) KL(q*(.|x) || q_-i(.|x))
             = λ Σ_x μ(x) [ a_i E_q*[r_i] + log E_q*[exp(-a_i r_i)] ],   a_i = w_i / λ

Everything is computed in one vectorised pass over a dense ``(prompts, groups, candidates)`` tensor; see
:func:`solve` for the algorithm and its numerics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from auctions._numerics import log1p_mean_phi, log1p_mean_phi_series

__all__ = [
    "Instance",
    "MechanismError",
    "Outcome",
    "ReferencePoints",
    "make_instance",
    "normalise_scores",
    "payments_to_cents",
    "reference_points",
    "solve",
    "true_utility",
]

_EPS = float(np.finfo(np.float64).eps)

# The fast path's rounding error on a group's KL is at most _FAST_PATH_ULPS ulps of a per-group scale (see
# _kl_totals; the worst seen on random instances is 2.5). A group whose bound exceeds _FAST_PATH_REL of its KL
# is recomputed with the cancellation-free form, so payments stay within ~1e-10 relative.
_FAST_PATH_ULPS = 4.0
_FAST_PATH_REL = 1e-10
# Below this, the sum E_q*[exp(-a r)] may have lost digits to underflow (or to dropping q* masses below
# _NEGLIGIBLE): recompute those rows in log space.
_UNDERFLOW = 1e-200
_NEGLIGIBLE = 1e-250
# Below this rate |a (E[s] - s)| < 0.1 for shifted rewards in [0, 1], the range of the Taylor form.
_SERIES_RATE = 0.09
# Below this rate the exp form cannot pass its own bound: a prompt's KL is at most a² / 8 (Hoeffding's lemma for
# rewards in [0, 1]), so 4 ulps of 1 exceed 1e-10 of it. Those groups always take the expm1 form.
_EXPM1_RATE = float(np.sqrt(8.0 * _FAST_PATH_ULPS * _EPS / _FAST_PATH_REL))


def _exp_is_vectorised() -> bool:
    """Whether numpy's float64 ``exp`` runs its own AVX-512 kernel here (several times faster than ``expm1``).

    Elsewhere both are the C library's scalar functions and ``expm1`` is the faster of the two on the small
    arguments of low-rate groups. Either answer gives the same payments to the fast path's accuracy bound.
    """
    try:
        from numpy.lib.introspect import opt_func_info

        current = opt_func_info(func_name="^exp$", signature="float64")["exp"]["dd"]["current"]
    except Exception:  # an older or newer numpy without this (experimental) introspection: assume scalar
        return False
    return "X86_V4" in current or "AVX512" in current


# Groups below this rate take the expm1 form in the first pass, the rest exp (see _exp_is_vectorised).
_SPLIT_RATE = _EXPM1_RATE if _exp_is_vectorised() else 1.0


class MechanismError(ValueError):
    """An instance the mechanism cannot run on; the message names the group, prompt and candidate at fault."""


@dataclass(frozen=True, eq=False)
class _Packed:
    """Dense layout for the vectorised solver (built once, when the instance is made).

    Groups are stored by increasing bid: the solver treats groups with w_i / λ below and above 1 with different
    exponentials, and contiguous slices let it do so without copying the tensor.

    ``shifted[p, i, k] = r_i(x_p, y_k) - low[p, i]`` where ``low`` is the group's lowest reward on the prompt:
    rewards are only compared within a prompt, so the shift changes nothing mathematically, but it makes a
    constant report exactly zero and keeps a huge bid on a near-constant reward from swamping the others'
    digits in the aggregate. Padding candidates have ``log_q0 = -inf`` and ``shifted = 0``.
    """

    log_q0: np.ndarray  # (P, K) normalised base log-weights, -inf on padding
    shifted: np.ndarray  # (P, n, K), groups in ``order``
    low: np.ndarray  # (P, n), groups in ``order``
    sizes: np.ndarray  # (P,) candidates per prompt
    order: np.ndarray  # (n,) group indices by increasing bid, so low- and high-rate groups are contiguous


@dataclass(frozen=True, eq=False)
class Instance:
    """One auction round: reports (bids, rewards) and the round's fixed candidate set.

    Prefer :func:`make_instance`, which accepts plain lists and default prompt weights and copies its input.
    Constructing directly validates too (prompt weights must already sum to 1) and marks the given arrays
    read-only, since the solver's packed copy of them must not go stale.
    """

    kl_weight: float
    group_ids: tuple[str, ...]
    bids: np.ndarray  # (n,)
    prompt_weights: np.ndarray  # (P,), sums to 1
    base_logweights: tuple[np.ndarray, ...]  # one (K_p,) per prompt, unnormalised
    rewards: tuple[np.ndarray, ...]  # one (n, K_p) per prompt, in [0, 1]
    packed: _Packed = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self)
        # Freeze the arrays (flags only, no copy): the packed layout below must stay in step with them.
        for arr in (self.bids, self.prompt_weights, *self.base_logweights, *self.rewards):
            arr.setflags(write=False)
        object.__setattr__(self, "packed", _pack(self))

    @property
    def n_groups(self) -> int:
        return len(self.group_ids)

    @property
    def n_prompts(self) -> int:
        return len(self.base_logweights)

    def group_index(self, group_id: str) -> int:
        try:
            return self.group_ids.index(group_id)
        except ValueError:
            raise MechanismError(f"group {group_id!r}: no such group in the instance") from None


@dataclass(frozen=True, eq=False)
class Outcome:
    """The mechanism's result under the reports. Money is in the bids' currency (floats; see payments_to_cents)."""

    policy: tuple[np.ndarray, ...]  # q*, one (K_p,) per prompt
    expected_reward: np.ndarray  # (n,) Σ_x μ(x) E_q*[r_i]
    value: np.ndarray  # (n,) w_i * expected_reward
    payment: np.ndarray  # (n,)
    utility: np.ndarray  # (n,) value - payment, under the reports
    welfare: float  # affine social welfare of q*: λ Σ μ log Z
    kl_to_base: float  # Σ μ KL(q* || q0)
    revenue: float  # Σ payments
    log_partition: np.ndarray  # (P,) log Z(x) = log E_q0[exp(R/λ)]


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _as_float_array(value: Any, what: str, ndim: int) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise MechanismError(f"{what}: expected numbers") from None
    if arr.ndim != ndim:
        raise MechanismError(f"{what}: expected a {ndim}-dimensional array of numbers, got shape {arr.shape}")
    return arr


def make_instance(
    *,
    kl_weight: float,
    group_ids: Sequence[str],
    bids: Sequence[float] | np.ndarray,
    base_logweights: Sequence[Sequence[float] | np.ndarray],
    rewards: Sequence[Sequence[Sequence[float]] | np.ndarray],
    prompt_weights: Sequence[float] | np.ndarray | None = None,
) -> Instance:
    """Validate and build an :class:`Instance`.

    ``rewards[p]`` is the ``(n_groups, n_candidates_p)`` matrix of prompt ``p``; ``prompt_weights`` default to
    uniform and are normalised to sum to 1. Raises :class:`MechanismError` naming what is wrong.
    """
    if not isinstance(kl_weight, int | float | np.floating | np.integer) or isinstance(kl_weight, bool):
        raise MechanismError("kl_weight: expected a number")
    ids = tuple(group_ids)
    n = len(ids)
    bids_arr = _as_float_array(bids, "bids", 1)
    n_prompts = len(base_logweights)
    if n_prompts == 0:
        raise MechanismError("prompts: at least one prompt is required")
    if len(rewards) != n_prompts:
        raise MechanismError(f"rewards: expected one matrix per prompt ({n_prompts}), got {len(rewards)}")
    base = tuple(_as_float_array(b, f"prompt {p}: base_logweights", 1) for p, b in enumerate(base_logweights))
    mats = []
    for p, m in enumerate(rewards):
        if not n:
            mats.append(np.zeros((0, base[p].shape[0])))
            continue
        if len(m) != n:
            raise MechanismError(f"prompt {p}: rewards for {len(m)} groups, expected {n}")
        try:
            whole = np.array(m, dtype=np.float64)  # a copy: the instance must not share the caller's buffer
        except (TypeError, ValueError):
            whole = None  # ragged or not numbers: go row by row below to name the group at fault
        if whole is not None and whole.ndim == 2 and whole.shape[1] == base[p].shape[0]:
            mats.append(whole)
            continue
        rows = [_as_float_array(row, f"group {ids[i]!r}, prompt {p}: rewards", 1) for i, row in enumerate(m)]
        for i, row in enumerate(rows):
            if row.shape[0] != base[p].shape[0]:
                raise MechanismError(
                    f"group {ids[i]!r}, prompt {p}: {row.shape[0]} rewards for {base[p].shape[0]} candidates "
                    "(every group must score every candidate)"
                )
        mats.append(np.stack(rows))
    if prompt_weights is None:
        weights = np.full(n_prompts, 1.0 / n_prompts)
    else:
        weights = normalise_prompt_weights(prompt_weights, n_prompts)
    return Instance(
        kl_weight=float(kl_weight),
        group_ids=ids,
        bids=bids_arr,
        prompt_weights=weights,
        base_logweights=base,
        rewards=tuple(mats),
    )


def normalise_prompt_weights(weights: Sequence[float] | np.ndarray, n_prompts: int) -> np.ndarray:
    """Prompt weights μ(x) scaled to sum to 1 (each must be finite and >= 0, their sum > 0)."""
    arr = _as_float_array(weights, "prompt weights", 1)
    if arr.shape[0] != n_prompts:
        raise MechanismError(f"prompt weights: expected {n_prompts}, got {arr.shape[0]}")
    for p, value in enumerate(arr):
        if not np.isfinite(value) or value < 0:
            raise MechanismError(f"prompt {p}: weight {float(value)!r} must be a finite number >= 0")
    total = arr.sum()
    if not total > 0 or not np.isfinite(total):
        raise MechanismError("prompts: the prompt weights must have a positive, finite sum")
    return arr / total


def _validate(inst: Instance) -> None:
    lam = inst.kl_weight
    if not isinstance(lam, float) or not np.isfinite(lam) or lam <= 0:
        raise MechanismError(f"kl_weight: {lam!r} must be a finite number > 0")
    ids = inst.group_ids
    for i, gid in enumerate(ids):
        if not isinstance(gid, str) or not gid:
            raise MechanismError(f"groups[{i}]: the id must be a non-empty string")
    seen: set[str] = set()
    for gid in ids:
        if gid in seen:
            raise MechanismError(f"group {gid!r}: the id appears twice")
        seen.add(gid)
    n = len(ids)
    bids = inst.bids
    if not isinstance(bids, np.ndarray) or bids.dtype != np.float64 or bids.shape != (n,):
        raise MechanismError(f"bids: expected a float64 array of shape ({n},)")
    for i in range(n):
        if not np.isfinite(bids[i]) or bids[i] < 0:
            raise MechanismError(f"group {ids[i]!r}: bid {float(bids[i])!r} must be a finite number >= 0")
    with np.errstate(over="ignore"):
        total_rate = float(np.sum(bids)) / lam
    if not np.isfinite(total_rate):
        raise MechanismError("kl_weight: the total bid divided by kl_weight overflows; use a larger kl_weight")
    n_prompts = len(inst.base_logweights)
    if n_prompts == 0:
        raise MechanismError("prompts: at least one prompt is required")
    if len(inst.rewards) != n_prompts:
        raise MechanismError(f"rewards: expected one matrix per prompt ({n_prompts}), got {len(inst.rewards)}")
    mu = inst.prompt_weights
    if not isinstance(mu, np.ndarray) or mu.shape != (n_prompts,) or not np.all(np.isfinite(mu)) or np.any(mu < 0):
        raise MechanismError(f"prompt weights: expected {n_prompts} finite numbers >= 0")
    if abs(float(mu.sum()) - 1.0) > 1e-9:
        raise MechanismError("prompt weights: must sum to 1 (use make_instance to normalise them)")
    for p, (base, rew) in enumerate(zip(inst.base_logweights, inst.rewards, strict=True)):
        if not isinstance(base, np.ndarray) or base.ndim != 1 or base.dtype != np.float64:
            raise MechanismError(f"prompt {p}: base_logweights must be a float64 vector")
        k = base.shape[0]
        if k == 0:
            raise MechanismError(f"prompt {p}: at least one candidate is required")
        bad = np.flatnonzero(~np.isfinite(base))
        if bad.size:
            raise MechanismError(
                f"prompt {p}, candidate {bad[0]}: base log-weight {float(base[bad[0]])!r} is not finite"
            )
        if not isinstance(rew, np.ndarray) or rew.ndim != 2 or rew.dtype != np.float64:
            raise MechanismError(f"prompt {p}: rewards must be a float64 (groups, candidates) matrix")
        if rew.shape[0] != n:
            raise MechanismError(f"prompt {p}: rewards for {rew.shape[0]} groups, expected {n}")
        if rew.shape[1] != k:
            raise MechanismError(f"prompt {p}: every group must score all {k} candidates, got {rew.shape[1]}")
        bad_cells = np.argwhere(~((rew >= 0) & (rew <= 1)))  # also catches NaN
        if bad_cells.size:
            i, c = bad_cells[0]
            raise MechanismError(
                f"group {ids[i]!r}, prompt {p}, candidate {c}: reward {float(rew[i, c])!r} is not a number in [0, 1]"
            )


def _pack(inst: Instance) -> _Packed:
    n, n_prompts = len(inst.group_ids), len(inst.base_logweights)
    sizes = np.array([b.shape[0] for b in inst.base_logweights])
    k_max = int(sizes.max())
    log_q0 = np.full((n_prompts, k_max), -np.inf)
    shifted = np.zeros((n_prompts, n, k_max))
    low = np.zeros((n_prompts, n))
    order = np.argsort(inst.bids, kind="stable")
    for p, (base, rew) in enumerate(zip(inst.base_logweights, inst.rewards, strict=True)):
        k = base.shape[0]
        top = base.max()
        log_q0[p, :k] = base - (top + np.log(np.exp(base - top).sum()))
        if n:
            sorted_rew = rew[order]
            low[p] = sorted_rew.min(axis=1)
            np.subtract(sorted_rew, low[p][:, None], out=shifted[p, :, :k])
    for a in (log_q0, shifted, low, order):
        _readonly(a)
    return _Packed(log_q0=log_q0, shifted=shifted, low=low, sizes=sizes, order=order)


def solve(instance: Instance, *, payments: bool = True) -> Outcome:
    """Compute q*, each group's expected reward, value, payment and utility, the welfare and the KL from the base.

    Algorithm (P prompts, n groups, K candidates; a_i = w_i / λ; rewards shifted so each group's lowest reward on
    each prompt is 0, which changes nothing because only differences within a prompt matter):

    1. Aggregate: S(x, k) = Σ_i w_i s_i(x, k) in one matrix-vector product over the (P, n, K) tensor; the shift
       lowers R by the per-prompt constant B(x) = Σ_i w_i low_i(x).
    2. Policy, measured from each prompt's best candidate: t_k = log q0_k + (S_k - max S) / λ, then
       log q*_k = t_k - max t - log Σ exp(t - max t) (logsumexp). The money difference S_k - max S is formed before
       dividing by λ, so the exponents of the candidates that carry mass are small numbers however large S / λ
       is, and base log-weights never vanish below the rounding of S / λ.
    3. Partition function and welfare, centred on the base mean: with c(x) = E_q0[S]/λ and v = S/λ - c,
       log E_q0[exp v] = log1p(E_q0[φ(v)]), φ(u) = e^u - 1 - u >= 0, summed in log space (no cancellation, no
       overflow). log Z = B/λ + c + that; ASW = Σ μ (E_q0[R] + λ log1p(...)). KL(q* || q0) per prompt is
       E_q*[v] - log1p(...) when v is small (both terms ~ Var, relative-accurate) or E_q*[log q* - log q0] when
       it is large, whichever has the smaller rounding bound.
    4. Expected rewards E_q*[r_i] for all groups: one batched matrix-vector product.
    5. Payments, fast path: one exponential per tensor element. The leave-one-out identity
       log Z_-i = log Z + log E_q*[exp(-a_i s_i)] gives KL_i(x) = a_i E_q*[s_i] + log E_q*[exp(-a_i s_i)]; the
       exponent is <= 0, so nothing overflows. Groups with a_i below a split rate use T = E_q*[expm1(-a_i s_i)]
       and log1p(T), which keeps both terms relative-accurate when they nearly cancel (KL ~ a² Var against terms
       ~ a E[s]); the rest use exp. The split is 1 where numpy's exp is the C library's (expm1 is then the faster
       of the two on small arguments) and 0.0084 where numpy vectorises exp (AVX-512): below 0.0084 the exp form
       could never pass its bound. Steps 1, 2, 4 and 5 share one cache-blocked pass over the tensor.
    6. Each group carries a bound on its fast-path rounding: 4 ulps of (1 + e) a_i Σ μ E_q*[s_i] in the expm1
       form, of 1 + a_i Σ μ E_q*[s_i] in the exp form (the worst seen on random instances is 2.5 ulps). Groups
       whose bound exceeds 1e-10 of their KL, or with a row whose E_q*[exp(-a s)] fell below 1e-200, are
       recomputed: in the expm1 form first if they took exp with a_i < 1; if still weak, exactly as
       KL = log1p(E_q*[φ(a_i (E_q*[s_i] - s_i))]) (every term >= 0), by its Taylor series when a_i < 0.09, else
       in log space. Accurate to a few ulps for any a_i from 0 to 1e15, and exactly 0 for a constant report or a
       zero bid.
    7. p_i = λ Σ μ KL_i, clamped into [0, value_i] against rounding only (a violation beyond rounding raises).

    ``payments=False`` runs the same allocation and charges nothing (the no-payment mechanism of the lab).
    """
    pk = instance.packed
    lam = instance.kl_weight
    w = instance.bids[pk.order]  # everything below is in the packed (bid) order until the end
    mu = instance.prompt_weights
    a = w / lam
    log_q0, shifted = pk.log_q0, pk.shifted
    valid = np.isfinite(log_q0)
    q0 = np.exp(log_q0)

    n = w.shape[0]
    split = int(np.searchsorted(a, _SPLIT_RATE))
    base_shift = pk.low @ w if w.size else np.zeros(len(mu))  # (P,)
    if payments and n:
        # 1-2, 4-5 in one cache-blocked pass over the tensor.
        agg, log_q, q, mean_shifted, moment = _moments(shifted, w, log_q0, lam, split)
    else:
        agg = _aggregate(w, shifted)  # (P, K)
        log_q, q = _policy(log_q0, agg, lam)
        mean_shifted, moment = np.matmul(shifted, q[:, :, None])[:, :, 0], None  # (P, n)

    # 3. Partition function, welfare and KL from the base.
    mean_agg = np.einsum("pk,pk->p", q0, agg)  # E_q0[S], money
    centre = mean_agg / lam
    v = np.where(valid, agg / lam - centre[:, None], 0.0)
    log_mgf = log1p_mean_phi(log_q0, v)  # log E_q0[exp v]
    log_partition = base_shift / lam + centre + log_mgf
    welfare = float(mu @ (base_shift + mean_agg + lam * log_mgf))
    kl_to_base = float(mu @ _kl_to_base_rows(q, log_q, log_q0, v, log_mgf))

    mean_total = mu @ mean_shifted
    # Means of numbers in [0, 1] can round an ulp outside it; clip so that value <= bid holds exactly.
    expected_reward = np.clip(mu @ pk.low + mean_total, 0.0, 1.0)
    value = w * expected_reward

    if moment is not None:
        payment = lam * _kl_totals(a, shifted, q, log_q, mean_shifted, mean_total, moment, mu, split)
        payment = _clamp_payments(payment, value, lam, w)
    else:
        payment = np.zeros(n)
    unsort = _unsort(pk.order)
    expected_reward, value, payment = expected_reward[unsort], value[unsort], payment[unsort]

    _readonly(q)  # its row views below inherit read-only
    policy = tuple(q[p, :k] for p, k in enumerate(pk.sizes.tolist()))
    return Outcome(
        policy=policy,
        expected_reward=_readonly(expected_reward),
        value=_readonly(value),
        payment=_readonly(payment),
        utility=_readonly(value - payment),
        welfare=welfare,
        kl_to_base=kl_to_base,
        revenue=float(payment.sum()),
        log_partition=_readonly(log_partition),
    )


def _unsort(order: np.ndarray) -> np.ndarray:
    unsort = np.empty(order.shape[0], dtype=np.intp)
    unsort[order] = np.arange(order.shape[0])
    return unsort


def _aggregate(w: np.ndarray, shifted: np.ndarray) -> np.ndarray:
    """S(x, k) = Σ_i w_i s_i(x, k), shape (P, K); zero without groups (and on padding candidates)."""
    if not w.size:
        return np.zeros((shifted.shape[0], shifted.shape[2]))
    return np.matmul(w, shifted)


def _policy(log_q0: np.ndarray, agg: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """log q* and q* per prompt, both (P, K), measured from each prompt's best candidate (step 2 of solve).

    ``log_q`` is exact to a few ulps of the base log-weights' spread plus 750 nats for every candidate that carries
    mass, however large S / λ is (the resolution of S itself aside). ``q`` has masses below 1e-250 set to 0 (they
    cannot move any expectation, and subnormal numbers make every later pass slow) and is renormalised.
    """
    # Padding candidates have S = 0 <= every real S (w, s >= 0), so the row maximum is a real candidate's.
    top = agg.max(axis=1, keepdims=True)
    t = log_q0 + (agg - top) / lam  # -inf on padding
    t -= t.max(axis=1, keepdims=True)
    log_q = t - np.log(np.exp(t).sum(axis=1, keepdims=True))
    q = np.exp(log_q)
    q[q < _NEGLIGIBLE] = 0.0
    q /= q.sum(axis=1, keepdims=True)
    return log_q, q


def _kl_to_base_rows(
    q: np.ndarray, log_q: np.ndarray, log_q0: np.ndarray, v: np.ndarray, log_mgf: np.ndarray
) -> np.ndarray:
    """KL(q*(.|x) || q0(.|x)) per prompt, from whichever of two exact forms rounds less on that prompt.

    Centred: E_q*[v] - log E_q0[exp v], its rounding a few ulps of E_q*|v| + log E_q0[exp v] (best when v is
    small: both terms are ~ Var and the difference keeps its relative accuracy). Direct: E_q*[log q* - log q0],
    its rounding a few ulps of E_q*[|log q*| + |log q0|] (best when S / λ is huge and the centred terms cancel).
    """
    valid = np.isfinite(log_q0)
    centred = np.einsum("pk,pk->p", q, v) - log_mgf
    with np.errstate(invalid="ignore"):
        log_ratio = np.where(valid, log_q - log_q0, 0.0)
        direct = np.einsum("pk,pk->p", q, log_ratio)
        scale_direct = np.einsum("pk,pk->p", q, np.where(valid, np.abs(log_q) + np.abs(log_q0), 0.0))
    scale_centred = np.einsum("pk,pk->p", q, np.abs(v)) + log_mgf
    return np.maximum(np.where(scale_centred <= scale_direct, centred, direct), 0.0)


# Prompts per block in _moments: about 2 MB of float64 per block keeps each block in cache between its passes.
_BLOCK_ELEMENTS = 1 << 18


def _blocks(shape: tuple[int, ...]) -> range:
    """Start indices of the prompt blocks of a (P, n, K) tensor (see _BLOCK_ELEMENTS)."""
    n_prompts, n, k = shape
    return range(0, n_prompts, max(1, _BLOCK_ELEMENTS // max(1, n * k)))


def _moments(
    shifted: np.ndarray, w: np.ndarray, log_q0: np.ndarray, lam: float, split: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1, 2, 4 and 5's moments of :func:`solve` in one pass over the tensor: S, log q*, q*, E_q*[s_i] and
    the payment moments, the last two (P, n).

    The moment is E_q*[expm1(-a_i s_i)] for the first ``split`` groups (a_i < _SPLIT_RATE) and E_q*[exp(-a_i s_i)]
    for the rest. q* on a prompt depends only on that prompt's aggregate, so the tensor is walked in blocks of
    prompts small enough to stay in cache and each element is read from memory once, for the aggregate, the mean,
    the scaling, the exponential and the weighted sum.
    """
    n_prompts, n, k = shifted.shape
    starts = _blocks(shifted.shape)
    rate = np.repeat(-w / lam, k)[None, :]  # -a_i for each (group, candidate) column of a (P, n*K) view
    flat = shifted.reshape(n_prompts, n * k)
    agg = np.empty((n_prompts, k))
    log_q = np.empty((n_prompts, k))
    q = np.empty((n_prompts, k))
    mean = np.empty((n_prompts, n, 1))
    moment = np.empty((n_prompts, n, 1))
    buf = np.empty((min(starts.step, n_prompts), n * k))
    cut = split * k
    for start in starts:
        stop = min(n_prompts, start + starts.step)
        block = shifted[start:stop]
        np.matmul(w, block, out=agg[start:stop])
        log_q[start:stop], q[start:stop] = _policy(log_q0[start:stop], agg[start:stop], lam)
        weights = q[start:stop, :, None]
        np.matmul(block, weights, out=mean[start:stop])
        work = buf[: stop - start]
        np.multiply(flat[start:stop], rate, out=work)
        if cut:
            np.expm1(work[:, :cut], out=work[:, :cut])
        np.exp(work[:, cut:], out=work[:, cut:])
        np.matmul(work.reshape(stop - start, n, k), weights, out=moment[start:stop])
    return agg, log_q, q, mean[:, :, 0], moment[:, :, 0]


def _group_slice(shifted: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """shifted[:, groups, :], as a view when the (sorted) indices are one contiguous run."""
    if groups[-1] - groups[0] + 1 == groups.size:
        return shifted[:, groups[0] : groups[-1] + 1, :]
    return np.take(shifted, groups, axis=1)


def _kl_totals(
    a: np.ndarray,
    shifted: np.ndarray,
    q: np.ndarray,
    log_q: np.ndarray,
    mean_shifted: np.ndarray,
    mean_total: np.ndarray,
    moment: np.ndarray,
    mu: np.ndarray,
    split: int,
) -> np.ndarray:
    """Σ_x μ(x) KL(q*(.|x) || q_-i(.|x)) for every group, shape (n,) (steps 5-6 of :func:`solve`).

    Groups are stored by increasing bid; for those before ``split`` ``moment`` is E_q*[expm1(-a s)], for the rest
    E_q*[exp(-a s)]. ``mean_total`` is Σ_x μ(x) E_q*[s_i].
    """
    n = a.shape[0]
    total = a * mean_total
    bound = np.empty(n)  # rounding bound of the fast path, in ulps (before the _FAST_PATH_ULPS factor)
    # expm1 form: |log1p(T)| and a E[s] are both <= a E[s], and the rounding of log1p(T) is relative to
    # T / (1 + T) <= e a E[s]: the bound is (1 + e) a Σ μ E[s].
    total[:split] += mu @ np.log1p(moment[:, :split])
    bound[:split] = (1.0 + np.e) * a[:split] * mean_total[:split]
    # exp form: log E is accurate to a few ulps absolute (E in (0, 1], rounded relative), a E[s] to a few ulps
    # of itself: the bound is 1 + a Σ μ E[s].
    high = moment[:, split:]
    underflow = ~(high >= _UNDERFLOW)
    with np.errstate(divide="ignore"):
        total[split:] += mu @ np.log(np.where(underflow, 1.0, high))
    bound[split:] = 1.0 + a[split:] * mean_total[split:]
    weak = np.zeros(n, dtype=bool)
    weak[split:] = underflow.any(axis=0)
    weak |= bound * (_FAST_PATH_ULPS * _EPS) > _FAST_PATH_REL * total
    if not weak.any():
        return total
    # Weak groups of the exp form with a < 1 (no underflow there: E >= e^-1) get a second try in the expm1 form.
    small = np.flatnonzero(weak & (a < 1.0))
    small = small[small >= split]
    if small.size:
        work = _group_slice(shifted, small) * (-a[small])[None, :, None]
        np.expm1(work, out=work)
        t = np.matmul(work, q[:, :, None])[:, :, 0]
        total[small] = a[small] * mean_total[small] + mu @ np.log1p(t)
        bound_small = (1.0 + np.e) * a[small] * mean_total[small]
        weak[small] = bound_small * (_FAST_PATH_ULPS * _EPS) > _FAST_PATH_REL * total[small]
    if not weak.any():
        return total
    # Weak groups with small rates have |exponent| < 0.1 everywhere: a Taylor series in linear space is exact and
    # cheap. The rest (large rates, underflow) go through the log-space form.
    series = np.flatnonzero(weak & (a < _SERIES_RATE))
    if series.size:
        u = a[series][None, :, None] * (mean_shifted[:, series][:, :, None] - shifted[:, series, :])
        total[series] = mu @ log1p_mean_phi_series(u, q)
    rest = np.flatnonzero(weak & ~(a < _SERIES_RATE))
    if rest.size:
        rows = np.zeros(mean_shifted.shape, dtype=bool)
        rows[:, rest] = True
        total[rest] = mu @ _kl_stable(a, shifted, log_q, mean_shifted, rows).reshape(len(mu), rest.size)
    return total


def _kl_stable(
    a: np.ndarray, shifted: np.ndarray, log_q: np.ndarray, mean_shifted: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """KL = log1p(E_q*[φ(a (m - s))]) for the (prompt, group) pairs selected by the boolean mask ``rows``."""
    p_idx, i_idx = np.nonzero(rows)
    a_rows = a[i_idx][:, None]
    u = a_rows * (mean_shifted[p_idx, i_idx][:, None] - shifted[p_idx, i_idx, :])
    return log1p_mean_phi(log_q[p_idx], u)


def _clamp_payments(payment: np.ndarray, value: np.ndarray, lam: float, w: np.ndarray) -> np.ndarray:
    """Clamp into [0, value] what rounding pushed just outside; anything further out is a bug and raises.

    Tolerance: 1e-8 of the value plus 64 ulps of (λ + w_i), the scale of the terms the payment is made of.
    """
    tol = 1e-8 * value + 64 * _EPS * (lam + w)
    if np.any(payment < -tol) or np.any(payment > value + tol) or not np.all(np.isfinite(payment)):
        raise RuntimeError(f"internal error: payments {payment!r} fall outside [0, value {value!r}]")
    return np.clip(payment, 0.0, value)


def true_utility(
    instance: Instance,
    outcome: Outcome,
    true_rewards: Sequence[np.ndarray],
    true_bid: float,
    group_index: int,
) -> float:
    """A group's utility by its *true* preferences under an outcome computed from (possibly false) reports.

    ``true_rewards[p]`` is the group's true reward on prompt p's candidates; utility = true_bid *
    Σ_x μ(x) E_q*[r_true] - payment.
    """
    value = true_value(instance, outcome, true_rewards, true_bid)
    return value - float(outcome.payment[group_index])


def true_value(instance: Instance, outcome: Outcome, true_rewards: Sequence[np.ndarray], true_bid: float) -> float:
    """true_bid * Σ_x μ(x) E_q*[r_true]: what the outcome is worth to a group with these true preferences."""
    per_prompt = np.array(
        [float(q @ np.asarray(r, dtype=np.float64)) for q, r in zip(outcome.policy, true_rewards, strict=True)]
    )
    return float(true_bid) * float(instance.prompt_weights @ per_prompt)


@dataclass(frozen=True, eq=False)
class ReferencePoints:
    """Rewards that frame each group's result, all Σ_x μ(x) E[r_i] on the auction's normalised scale, shape (n,).

    ``base``: under the base weights q0. ``without``: C_i, under q_-i, the policy the round would train without the
    group (its outside option). ``promised``: under q* (the same as ``Outcome.expected_reward``). The auction's
    price obeys p_i <= w_i (promised_i - without_i); see docs/auction.md.
    """

    base: np.ndarray
    without: np.ndarray
    promised: np.ndarray


# Up to this rate q_-i ∝ q* exp(-a s) is formed in linear space: exp(-a s) >= e^-200 cannot underflow, and q* masses
# dropped below _NEGLIGIBLE weigh at most e^200 * 1e-250 < 1e-163 in q_-i. Above it, log space.
_LINEAR_RATE = 200.0


def reference_points(instance: Instance) -> ReferencePoints:
    """E_q0[r_i], C_i = E_{q_-i}[r_i] and E_q*[r_i] for every group, in O(n * prompts * candidates).

    No re-solve: q_-i(k|x) ∝ q*(k|x) exp(-a_i s_i(x, k)) (the leave-one-out identity of :func:`solve`), formed in
    linear space for a_i <= 200 (blocked like the payments pass) and in log space, from log q*, above.
    """
    pk = instance.packed
    lam = instance.kl_weight
    w = instance.bids[pk.order]
    mu = instance.prompt_weights
    a = w / lam
    shifted = pk.shifted
    n_prompts, n, k = shifted.shape
    log_q, q = _policy(pk.log_q0, _aggregate(w, shifted), lam)
    q0 = np.exp(pk.log_q0)
    base_means = np.matmul(shifted, q0[:, :, None])[:, :, 0]
    promised_means = np.matmul(shifted, q[:, :, None])[:, :, 0]
    without_means = np.empty((n_prompts, n))
    split = int(np.searchsorted(a, _LINEAR_RATE, side="right"))
    if split:
        low_rate = shifted[:, :split, :]
        for start in _blocks(shifted.shape):
            stop = min(n_prompts, start + _blocks(shifted.shape).step)
            block = low_rate[start:stop]
            weights = q[start:stop, :, None]
            tilted = np.exp(block * (-a[:split])[None, :, None])
            norm = np.matmul(tilted, weights)[:, :, 0]
            tilted *= block
            without_means[start:stop, :split] = np.matmul(tilted, weights)[:, :, 0] / norm
    if split < n:
        high_rate = shifted[:, split:, :]
        x = log_q[:, None, :] - a[split:][None, :, None] * high_rate
        x -= x.max(axis=2, keepdims=True)
        np.exp(x, out=x)
        without_means[:, split:] = np.einsum("pik,pik->pi", x, high_rate) / x.sum(axis=2)
    unsort = _unsort(pk.order)

    def total(means: np.ndarray) -> np.ndarray:
        return _readonly(np.clip(mu @ pk.low + mu @ means, 0.0, 1.0)[unsort])

    return ReferencePoints(base=total(base_means), without=total(without_means), promised=total(promised_means))


def normalise_scores(scores: Any) -> np.ndarray:
    """Min-max normalise one group's raw scores on all of a round's candidates to [0, 1].

    The map is ``(s - min) / (max - min)`` over *all* of the group's scores in the round (any shape; pass every
    prompt's candidates together). A constant input maps to all zeros: a group that likes everything equally has
    no preference, and a constant reward leaves q* unchanged and pays 0.

    Why this keeps the mechanism truthful: the normalised report is a fixed function of the group's own raw
    report, applied before the mechanism sees it. A group that wants a given normalised report can produce it by
    reporting any raw scores with that image, so lying about raw scores can achieve nothing that lying on the
    normalised scale could not, and on that scale truthful reporting is optimal. The map is affine and
    increasing, so the normalised scale still represents the same preferences (utilities are invariant to adding
    a constant and scale with the bid); it fixes what a bid means: the most the group would pay for its best
    candidate over its worst.
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size == 0:
        return arr.copy()
    if not np.all(np.isfinite(arr)):
        raise MechanismError("scores: every raw score must be a finite number")
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        return np.zeros_like(arr)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0)


def payments_to_cents(payments: Sequence[float] | np.ndarray, bids_cents: Sequence[int] | np.ndarray) -> list[int]:
    """Turn float payments (in cents) into integer cents: rounded down, clamped into [0, bid].

    Rounding down means the platform never charges more than the mechanism's price; the clamp to the bid is the
    guarantee billing relies on (it authorises the bid and captures at most that). NaN or infinite payments are a
    bug upstream and raise instead of being charged.
    """
    pay = np.asarray(payments, dtype=np.float64)
    bids = [int(b) for b in bids_cents]
    if pay.shape != (len(bids),):
        raise MechanismError(f"payments: expected {len(bids)} payments, got shape {pay.shape}")
    out = []
    for i, (p, b) in enumerate(zip(pay, bids, strict=True)):
        if not np.isfinite(p):
            raise MechanismError(f"payment {i}: {float(p)!r} is not a finite number")
        if b < 0:
            raise MechanismError(f"payment {i}: bid {b} cents is negative")
        out.append(min(max(int(np.floor(p)), 0), b))
    return out
