"""The RAG segment auction: for each segment of an LLM's answer, retrieve an ad by bid and relevance.

After Hajiaghayi, Lahaie, Rezaei, Shin, "Ad Auctions for LLMs via Retrieval Augmented Generation" (NeurIPS 2024).
Ad i bids b_i >= 0 and has relevance q_i >= 0 to the user's query (only ratios of relevances matter). Write
w_i = q_i b_i and S_i = Σ_{j≠i} w_j.

**One ad per segment.** Ad i wins the segment with probability x_i = w_i / Σ_j w_j, the allocation that maximises
the logarithmic social welfare Σ_i log(...) of the paper. It is realised as a randomisation over deterministic
truthful auctions: draw Gumbel noise G_i, give the segment to argmax_i log(w_i) + G_i (this picks i with
probability x_i), and charge the winner its critical bid for that draw, the lowest bid with which it would still
win: exp(max_{j≠i}(log w_j + G_j) - G_i) / q_i <= b_i. In expectation i pays
(S_i / q_i) ln(1 + w_i / S_i) - b_i (1 - x_i), Myerson's payment b_i x_i - ∫_0^{b_i} x_i(z) dz. Bidding one's
value per segment won is a dominant strategy in every draw, hence in expectation. Scaling all bids scales the
payments and leaves the allocation alone; scaling all relevances changes nothing.

**k ads per segment (weighted VCG over ad sets).** For a draw G, the platform picks the ad set A of size k that
maximises the weighted welfare Σ_{i∈A} λ_i b_i with weights λ_i = q_i e^{G_i}, which depend on nothing an ad
reports. That is an affine maximiser (weighted VCG), truthful for every draw. Because the objective adds up over
the set, the best set is the k largest scores log w_i + G_i (a Plackett-Luce sample of k ads without replacement),
and ad i's VCG payment (1/λ_i)[max_A Σ_{j∈A, j≠i} λ_j b_j - Σ_{j∈A*, j≠i} λ_j b_j] collapses to the best loser's
weighted bid over λ_i: exp(s_(k+1) - G_i) / q_i, the critical bid to stay in the top k. For k = 1 this is the
single-ad auction. Expected allocations and payments have no closed form for k > 1 and are integrated
numerically (:func:`_expected_top_k`).

**Several segments.** *With replacement*: every segment is an independent draw of the auction above, so an ad
can win several segments; expectations are T times the single-segment ones. *Without replacement*: an ad appears
at most once. The Gumbel noise is drawn once per answer, segment t gets the t-th block of k ads in score order,
and each shown ad pays its critical bid to stay in the top k·T. It is the k·T-ads auction laid out over T
segments, truthful when every segment is worth the same to an ad; when earlier segments are worth more, price
each segment with the segment-position construction of the summary auction instead.

An ad with w_i = 0 (zero bid or zero relevance) is never shown, so a segment can hold fewer than k ads, or none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auctions.ads.token import others_total, proportional_payment
from auctions.ads.validation import check_ids, check_range, default_ids, readonly, vector
from auctions.mechanism import MechanismError

__all__ = [
    "SegmentAuction",
    "SegmentDraw",
    "SegmentMetrics",
    "SegmentOutcome",
    "SegmentSimulation",
    "metrics",
    "segment_auction",
    "segment_draw",
    "segment_solve",
    "simulate",
]

# Coefficients of h(a)/a^2 = (1 - e^-a (1 + a)) / a^2 = Σ_{k>=2} (-1)^k (k-1)/k! a^(k-2), used below _H_SERIES_BELOW
# where the closed form cancels. Fourteen terms leave an error below 1e-20 there.
_H_SERIES = tuple((-1.0) ** k * (k - 1) / math.factorial(k) for k in range(2, 16))
_H_SERIES_BELOW = 0.05


@dataclass(frozen=True, eq=False)
class SegmentAuction:
    """Ads (ids, bids, relevances) and how many ads each segment holds."""

    ids: tuple[str, ...]
    bids: np.ndarray
    relevance: np.ndarray
    ads_per_segment: int = 1

    def __post_init__(self) -> None:
        bids = vector(self.bids, owner="ads", field="bid")
        n = bids.shape[0]
        if n == 0:
            raise MechanismError("ads: at least one ad is required")
        ids = check_ids(self.ids, owner="ads", n=n)
        check_range(bids, owner="ads", field="bid")
        relevance = vector(self.relevance, owner="ads", field="relevance", n=n)
        check_range(relevance, owner="ads", field="relevance")
        k = self.ads_per_segment
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise MechanismError(f"ads_per_segment: must be an integer >= 1, got {k!r}")
        with np.errstate(over="ignore"):
            if not np.isfinite(np.sum(bids * relevance)) or not np.isfinite(np.sum(bids)):
                raise MechanismError("ads[].bid: bid times relevance overflows")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "bids", readonly(bids))
        object.__setattr__(self, "relevance", readonly(relevance))
        object.__setattr__(self, "ads_per_segment", int(k))

    @property
    def n_ads(self) -> int:
        return len(self.ids)

    @property
    def weighted_bids(self) -> np.ndarray:
        """w_i = q_i b_i."""
        return self.relevance * self.bids


def segment_auction(
    *,
    bids: Sequence[float] | np.ndarray,
    relevance: Sequence[float] | np.ndarray,
    ids: Sequence[str] | None = None,
    ads_per_segment: int = 1,
) -> SegmentAuction:
    """Build a :class:`SegmentAuction`; ids default to ``ad0, ad1, ...``."""
    n = len(bids)
    return SegmentAuction(
        ids=tuple(ids) if ids is not None else default_ids("ad", n),
        bids=np.asarray(bids, dtype=np.float64),
        relevance=np.asarray(relevance, dtype=np.float64),
        ads_per_segment=ads_per_segment,
    )


@dataclass(frozen=True)
class SegmentMetrics:
    """The paper's normalised metrics (0 where the normaliser is 0). Over several segments they add up."""

    social_welfare: float  # Σ_i x_i q_i b_i / max_i q_i b_i
    revenue: float  # Σ_i payment_i / max_i b_i
    relevance: float  # Σ_i x_i q_i / max_i q_i


@dataclass(frozen=True, eq=False)
class SegmentOutcome:
    """Expected allocation and payments over ``segments`` segments. Money is in the bids' currency."""

    allocation: np.ndarray  # (n,) expected number of segments the ad appears in (one segment: P(ad wins))
    expected_payment: np.ndarray  # (n,)
    metrics: SegmentMetrics
    segments: int
    replacement: bool


@dataclass(frozen=True, eq=False)
class SegmentDraw:
    """One realised answer: the ads of each segment (best score first) and what each ad paid in total."""

    winners: tuple[tuple[int, ...], ...]  # one tuple of ad indices per segment
    payment: np.ndarray  # (n,)
    gumbels: np.ndarray  # (segments, n) with replacement, (1, n) without


def metrics(auction: SegmentAuction, allocation: np.ndarray, payment: np.ndarray) -> SegmentMetrics:
    """The paper's normalisations of welfare, revenue and relevance, for expected or realised allocations."""
    q, b = auction.relevance, auction.bids
    w = q * b
    top_w, top_b, top_q = float(w.max()), float(b.max()), float(q.max())
    return SegmentMetrics(
        social_welfare=float(allocation @ w) / top_w if top_w > 0 else 0.0,
        revenue=float(np.sum(payment)) / top_b if top_b > 0 else 0.0,
        relevance=float(allocation @ q) / top_q if top_q > 0 else 0.0,
    )


def _check_segments(segments: int) -> int:
    if isinstance(segments, bool) or not isinstance(segments, int | np.integer) or segments < 1:
        raise MechanismError(f"segments: must be an integer >= 1, got {segments!r}")
    return int(segments)


def segment_solve(auction: SegmentAuction, *, segments: int = 1, replacement: bool = True) -> SegmentOutcome:
    """Expected allocation, payments and metrics for ``segments`` segments (module docstring)."""
    t = _check_segments(segments)
    k = auction.ads_per_segment
    if replacement:
        x, pay = _expected_top_k(auction, k)
        x, pay = t * x, t * pay
    else:
        x, pay = _expected_top_k(auction, k * t)
    return SegmentOutcome(
        allocation=readonly(x),
        expected_payment=readonly(pay),
        metrics=metrics(auction, x, pay),
        segments=t,
        replacement=bool(replacement),
    )


def _expected_top_k(auction: SegmentAuction, k: int) -> tuple[np.ndarray, np.ndarray]:
    """P(ad i is among the k best scores) and its expected critical-bid payment, for every ad.

    1. Ads with w_i = 0 get nothing. If at most k ads have w > 0, each of them is shown for free.
    2. k = 1: the closed forms x_i = w_i / Σ w and (S_i / q_i) f(w_i / S_i), f(t) = ln(1 + t) - t / (1 + t).
    3. k > 1: numerically (:func:`_top_k_integrals`).
    """
    w, q, b = auction.weighted_bids, auction.relevance, auction.bids
    n = w.shape[0]
    live = w > 0
    x = np.zeros(n)
    pay = np.zeros(n)
    if int(live.sum()) <= k:
        x[live] = 1.0
        return x, pay
    if k == 1:
        others = others_total(w)
        x[live] = w[live] / (w[live] + others[live])
        pay[live] = proportional_payment(w[live], others[live]) / q[live]
    else:
        for i in np.flatnonzero(live):
            x[i], pay[i] = _top_k_integrals(w, b, int(i), k)
    return x, np.clip(pay, 0.0, b * x)


def _top_k_integrals(w: np.ndarray, bids: np.ndarray, i: int, k: int) -> tuple[float, float]:
    """Inclusion probability and expected payment of ad i when the k best of log w_j + G_j are shown.

    With y = exp(-(log w_i + G_i)), y ~ Exp(w_i), and given y each other ad j beats i independently with
    probability p_j(y) = 1 - exp(-w_j y). Let Q(y) = P(fewer than k others beat i | y) (a Poisson-binomial tail,
    by dynamic programming over the others). Substituting a = w_i y:

        x_i = ∫_0^∞ e^-a Q(a / w_i) da
        P_i = b_i x_i(b_i) - ∫_0^{b_i} x_i(z) dz = b_i ∫_0^∞ Q(a / w_i) [e^-a - h(a) / a²] da,
              h(a) = 1 - e^-a (1 + a)

    (the second from ∫_0^b q z e^{-q z y} dz = h(q b y) / (q y²)). The bracket is ~1/2 near 0 and ~ -1/a² far
    out; it is summed by its series below a = 0.05 to avoid cancellation. Q falls on the scale a ~ w_i / S_i, so
    the range is split there for the adaptive quadrature.
    """
    wi = float(w[i])
    from scipy import integrate  # imported here: the command line's other paths never pay for it

    others = np.delete(w, i)
    others = others[others > 0]

    def q_tail(y: float) -> float:
        stay = np.exp(-others * y)  # P(j does not beat i)
        probs = np.zeros(k)
        probs[0] = 1.0
        for s in stay:
            beat = 1.0 - s
            probs[1:] = probs[1:] * s + probs[:-1] * beat
            probs[0] *= s
        return float(probs.sum())

    def bracket(a: float) -> float:
        if a < _H_SERIES_BELOW:
            acc = 0.0
            for c in reversed(_H_SERIES):
                acc = acc * a + c
            return math.exp(-a) - acc
        h = -math.expm1(-a) - a * math.exp(-a)
        return math.exp(-a) - h / (a * a)

    scale = min(1.0, wi / float(others.sum()))
    cuts = sorted({0.0, scale, 1.0})
    opts: dict[str, Any] = {"epsabs": 1e-14, "epsrel": 1e-11, "limit": 200}
    x = 0.0
    area = 0.0
    for lo, hi in [*zip(cuts[:-1], cuts[1:], strict=True), (cuts[-1], math.inf)]:
        x += integrate.quad(lambda a: math.exp(-a) * q_tail(a / wi), lo, hi, **opts)[0]
        area += integrate.quad(lambda a: q_tail(a / wi) * bracket(a), lo, hi, **opts)[0]
    return min(max(x, 0.0), 1.0), float(bids[i]) * area


def _gumbels(auction: SegmentAuction, gumbels: Any, rows: int, rng: np.random.Generator | None) -> np.ndarray:
    if gumbels is None:
        if rng is None:
            raise MechanismError("segment_draw: pass rng or gumbels")
        return rng.gumbel(size=(rows, auction.n_ads))
    g = np.array(gumbels, dtype=np.float64)
    if g.ndim == 1:
        g = g[None, :]
    if g.shape != (rows, auction.n_ads):
        raise MechanismError(f"gumbels: expected shape ({rows}, {auction.n_ads}), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise MechanismError("gumbels: every entry must be a finite number")
    return g


def _top_k_draw(auction: SegmentAuction, g: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised over draws g (D, n): the shown ads in score order (D, k; -1 for an empty place) and payments.

    1. Scores s_i = log w_i + G_i (-inf when w_i = 0: never shown).
    2. The k best finite scores are shown; the threshold is the (k+1)-th best score (-inf when there is none).
    3. A shown ad pays exp(threshold - G_i) / q_i = b_i exp(threshold - s_i) <= b_i: its critical bid.
    """
    w, b = auction.weighted_bids, auction.bids
    n = w.shape[0]
    with np.errstate(divide="ignore"):
        scores = np.where(w > 0, np.log(np.where(w > 0, w, 1.0)) + g, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)
    top = order[:, :k]
    shown = np.isfinite(ranked[:, :k])
    threshold = ranked[:, k] if k < n else np.full(g.shape[0], -np.inf)
    payment = np.zeros(g.shape)
    rows = np.arange(g.shape[0])[:, None]
    with np.errstate(invalid="ignore"):
        price = np.where(np.isfinite(threshold)[:, None], b[top] * np.exp(threshold[:, None] - ranked[:, :k]), 0.0)
    price = np.where(shown, np.minimum(price, b[top]), 0.0)
    np.add.at(payment, (np.broadcast_to(rows, top.shape), top), price)
    return np.where(shown, top, -1), payment


def segment_draw(
    auction: SegmentAuction,
    *,
    rng: np.random.Generator | None = None,
    gumbels: Any = None,
    segments: int = 1,
    replacement: bool = True,
) -> SegmentDraw:
    """One realised answer of ``segments`` segments, from ``gumbels`` or noise drawn from ``rng``.

    With replacement, ``gumbels`` has one row per segment; without, one row for the whole answer.
    """
    t = _check_segments(segments)
    k = auction.ads_per_segment
    if replacement:
        g = _gumbels(auction, gumbels, t, rng)
        top, pay = _top_k_draw(auction, g, k)
        winners = tuple(tuple(int(a) for a in row if a >= 0) for row in top)
        total = pay.sum(axis=0)
    else:
        g = _gumbels(auction, gumbels, 1, rng)
        top, pay = _top_k_draw(auction, g, k * t)
        row = top[0]
        winners = tuple(tuple(int(a) for a in row[s * k : (s + 1) * k] if a >= 0) for s in range(t))
        total = pay[0]
    return SegmentDraw(winners=winners, payment=readonly(total), gumbels=readonly(g))


@dataclass(frozen=True, eq=False)
class SegmentSimulation:
    """``runs`` realised answers: per-run appearances and payments, and the metrics' mean and standard error."""

    allocation: np.ndarray  # (runs, n) segments each ad appeared in
    payment: np.ndarray  # (runs, n)
    mean: SegmentMetrics
    standard_error: SegmentMetrics
    standard_deviation: SegmentMetrics


def simulate(
    auction: SegmentAuction,
    *,
    rng: np.random.Generator,
    runs: int,
    segments: int = 1,
    replacement: bool = True,
) -> SegmentSimulation:
    """Draw ``runs`` answers and summarise the realised metrics (each run's metrics use the realised winners)."""
    t = _check_segments(segments)
    k = auction.ads_per_segment
    n = auction.n_ads
    if replacement:
        g = rng.gumbel(size=(runs * t, n))
        top, pay = _top_k_draw(auction, g, k)
        top = top.reshape(runs, t * k)
        pay = pay.reshape(runs, t, n).sum(axis=1)
    else:
        g = rng.gumbel(size=(runs, n))
        top, pay = _top_k_draw(auction, g, k * t)
    counts = np.zeros((runs, n))
    rows = np.broadcast_to(np.arange(runs)[:, None], top.shape)
    np.add.at(counts, (rows[top >= 0], top[top >= 0]), 1.0)
    per_run = _metrics_per_run(auction, counts, pay)
    mean = per_run.mean(axis=0)
    sd = per_run.std(axis=0, ddof=1) if runs > 1 else np.zeros(3)
    se = sd / math.sqrt(runs)
    return SegmentSimulation(
        allocation=readonly(counts),
        payment=readonly(pay),
        mean=SegmentMetrics(*(float(v) for v in mean)),
        standard_error=SegmentMetrics(*(float(v) for v in se)),
        standard_deviation=SegmentMetrics(*(float(v) for v in sd)),
    )


def _metrics_per_run(auction: SegmentAuction, counts: np.ndarray, pay: np.ndarray) -> np.ndarray:
    """:func:`metrics` for every run at once: (runs, 3) columns welfare, revenue, relevance."""
    q, b = auction.relevance, auction.bids
    w = q * b
    norms = (float(w.max()), float(b.max()), float(q.max()))
    raw = np.stack([counts @ w, pay.sum(axis=1), counts @ q], axis=1)
    return np.stack([raw[:, j] / norms[j] if norms[j] > 0 else np.zeros(raw.shape[0]) for j in range(3)], axis=1)
