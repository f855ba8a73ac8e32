"""The summary auction: ads share one LLM-written summary, each given words in proportion to its prominence.

After Dubey, Feng, Kidambi, Mehta, Wang, "Auctions with LLM Summaries" (KDD 2024). Ad i bids b_i per click and has
a click-through rate ctr_i; the LLM writes one summary of the shown ads, and an ad's share of the summary (its
*prominence*) raises its clicks with diminishing returns.

Generalised Proportional Allocation (GPA), with beta in [0, 1) and alpha = 1 / (1 - beta):

1. Rank the ads by e_i = b_i ctr_i (ties: input order); ads with e_i = 0 are never shown (a zero bid buys
   nothing); the top ``slots`` are shown, rank r with position weight pos = decay^(r - 1).
2. Prominence Prom_i ∝ (e_i pos_i)^alpha over the shown ads (sums to 1; 0 for ads not shown).
3. Click model: effective_ctr_i = ctr_i · pos_i · Prom_i^beta. For a fixed ranking GPA's prominence maximises the
   reported welfare Σ b_i effective_ctr_i over all shares summing to 1 (set the derivative
   beta e_i pos_i Prom_i^(beta - 1) equal across ads), and effective_ctr_i increases with b_i (a higher bid raises
   i's own share, and overtaking an ad improves i's position and worsens the other's).
4. Payments: Myerson's, per impression in expectation, P_i = b_i x_i(b_i) - ∫_0^{b_i} x_i(z) dz with x_i the
   effective CTR as a function of i's own bid, the others fixed. The ranking changes inside the integral, so it
   is split at the bids z = e_j / ctr_i where i would tie another ad, and each smooth piece is integrated by
   adaptive quadrature. Charged per click: cost_per_click = P_i / effective_ctr_i <= b_i (0 when no clicks).

Dynamic Word-Length Summary: with a budget of L words, ad i gets about Prom_i·L of them
(:func:`word_lengths`, largest remainders, so the counts are integers summing to L).

Truthfulness needs the click model to be right: an ad's value is v_i per click and its clicks are
effective_ctr_i, so its utility (v_i - cost_per_click_i) effective_ctr_i = v_i x_i - P_i is maximised at b_i = v_i.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auctions.ads.validation import check_ids, check_range, default_ids, readonly, vector
from auctions.mechanism import MechanismError

__all__ = [
    "SummaryAuction",
    "SummaryDraw",
    "SummaryOutcome",
    "WordBudgetComparison",
    "simulate_payments",
    "summary_auction",
    "summary_draw",
    "summary_solve",
    "welfare_by_word_budget",
    "word_lengths",
]

DEFAULT_DECAY = 0.9


@dataclass(frozen=True, eq=False)
class SummaryAuction:
    """Ads (ids, bids per click, click-through rates in [0, 1]) and the GPA parameters beta, slots, decay."""

    ids: tuple[str, ...]
    bids: np.ndarray
    ctrs: np.ndarray
    beta: float
    slots: int
    decay: float = DEFAULT_DECAY

    def __post_init__(self) -> None:
        bids = vector(self.bids, owner="ads", field="bid")
        n = bids.shape[0]
        if n == 0:
            raise MechanismError("ads: at least one ad is required")
        ids = check_ids(self.ids, owner="ads", n=n)
        check_range(bids, owner="ads", field="bid")
        ctrs = vector(self.ctrs, owner="ads", field="ctr", n=n)
        check_range(ctrs, owner="ads", field="ctr", high=1.0)
        beta = _scalar(self.beta, "beta")
        if not 0.0 <= beta < 1.0:
            raise MechanismError(f"beta: must be a number in [0, 1), got {beta!r}")
        if isinstance(self.slots, bool) or not isinstance(self.slots, int | np.integer) or self.slots < 1:
            raise MechanismError(f"slots: must be an integer >= 1, got {self.slots!r}")
        decay = _scalar(self.decay, "decay")
        if not 0.0 < decay <= 1.0:
            raise MechanismError(f"decay: must be a number in (0, 1], got {decay!r}")
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(bids * ctrs)) or not np.isfinite(np.sum(bids)):
                raise MechanismError("ads[].bid: the bids overflow")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "bids", readonly(bids))
        object.__setattr__(self, "ctrs", readonly(ctrs))
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "slots", int(self.slots))
        object.__setattr__(self, "decay", decay)

    @property
    def n_ads(self) -> int:
        return len(self.ids)

    @property
    def alpha(self) -> float:
        return 1.0 / (1.0 - self.beta)


def _scalar(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise MechanismError(f"{name}: expected a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise MechanismError(f"{name}: {out!r} is not a finite number")
    return out


def summary_auction(
    *,
    bids: Sequence[float] | np.ndarray,
    ctrs: Sequence[float] | np.ndarray,
    beta: float,
    slots: int,
    decay: float = DEFAULT_DECAY,
    ids: Sequence[str] | None = None,
) -> SummaryAuction:
    """Build a :class:`SummaryAuction`; ids default to ``ad0, ad1, ...``."""
    n = len(bids)
    return SummaryAuction(
        ids=tuple(ids) if ids is not None else default_ids("ad", n),
        bids=np.asarray(bids, dtype=np.float64),
        ctrs=np.asarray(ctrs, dtype=np.float64),
        beta=beta,
        slots=slots,
        decay=decay,
    )


@dataclass(frozen=True, eq=False)
class SummaryOutcome:
    """GPA's layout and prices. Money is in the bids' currency; payments are expected, per impression."""

    rank: np.ndarray  # (n,) 1 for the top shown ad, ...; 0 for an ad not shown
    position_weight: np.ndarray  # (n,) decay^(rank - 1); 0 for an ad not shown
    prominence: np.ndarray  # (n,) sums to 1 over the shown ads
    effective_ctr: np.ndarray  # (n,) ctr · pos · prominence^beta: expected clicks per impression
    expected_payment: np.ndarray  # (n,) Myerson: b x(b) - ∫_0^b x
    cost_per_click: np.ndarray  # (n,) expected_payment / effective_ctr, 0 when no clicks
    welfare: float  # Σ b_i effective_ctr_i: reported value of the clicks
    revenue: float


@dataclass(frozen=True, eq=False)
class _Layout:
    rank: np.ndarray
    pos: np.ndarray
    prominence: np.ndarray
    effective_ctr: np.ndarray


def _layout(effective_bid: np.ndarray, ctrs: np.ndarray, *, slots: int, decay: float, beta: float) -> _Layout:
    n = effective_bid.shape[0]
    alpha = 1.0 / (1.0 - beta)
    eligible = np.flatnonzero(effective_bid > 0)
    order = eligible[np.argsort(-effective_bid[eligible], kind="stable")]
    shown = order[:slots]
    rank = np.zeros(n, dtype=np.intp)
    rank[shown] = np.arange(1, shown.size + 1)
    pos = np.zeros(n)
    pos[shown] = decay ** np.arange(shown.size)
    prom = np.zeros(n)
    if shown.size:
        # (e pos)^alpha overflows for alpha near 100 (beta = 0.99): normalise in log space.
        log_score = alpha * (np.log(effective_bid[shown]) + np.log(pos[shown]))
        w = np.exp(log_score - log_score.max())
        prom[shown] = w / w.sum()
    eff = np.zeros(n)
    with np.errstate(divide="ignore"):
        eff[shown] = ctrs[shown] * pos[shown] * (prom[shown] ** beta if beta > 0 else 1.0)
    return _Layout(rank=rank, pos=pos, prominence=prom, effective_ctr=eff)


def summary_solve(auction: SummaryAuction, *, payments: bool = True) -> SummaryOutcome:
    """GPA's ranking, prominence, effective CTRs and Myerson prices (module docstring, steps 1-4).

    ``payments=False`` skips the integrals (the allocation alone, for sweeps and monotonicity checks).
    """
    e = auction.bids * auction.ctrs
    lay = _layout(e, auction.ctrs, slots=auction.slots, decay=auction.decay, beta=auction.beta)
    pay = np.zeros(auction.n_ads)
    if payments:
        for i in range(auction.n_ads):
            if lay.effective_ctr[i] > 0:
                area = _area_under_own_curve(auction, i, float(auction.bids[i]))
                pay[i] = float(auction.bids[i]) * lay.effective_ctr[i] - area
        # Rounding of the quadrature only: Myerson's payment of a monotone allocation lies in [0, b x(b)].
        pay = np.clip(pay, 0.0, auction.bids * lay.effective_ctr)
    with np.errstate(divide="ignore", invalid="ignore"):
        cpc = np.where(lay.effective_ctr > 0, pay / np.where(lay.effective_ctr > 0, lay.effective_ctr, 1.0), 0.0)
    cpc = np.minimum(cpc, auction.bids)
    return SummaryOutcome(
        rank=readonly(lay.rank),
        position_weight=readonly(lay.pos),
        prominence=readonly(lay.prominence),
        effective_ctr=readonly(lay.effective_ctr),
        expected_payment=readonly(pay),
        cost_per_click=readonly(cpc),
        welfare=float(auction.bids @ lay.effective_ctr),
        revenue=float(pay.sum()),
    )


def _area_under_own_curve(auction: SummaryAuction, i: int, upto: float) -> float:
    """∫_0^upto x_i(z) dz, x_i = ad i's effective CTR when it bids z and the others keep their bids.

    1. The others' effective bids e_j fix breakpoints z_j = e_j / ctr_i; between two of them i's rank is constant.
    2. On each piece: if i's rank exceeds ``slots``, x = 0. Otherwise the shown others and their positions are
       fixed, D = Σ_shown others (e_j pos_j)^alpha, A = (ctr_i pos_i)^alpha, and
       x(z) = ctr_i pos_i (A z^alpha / (A z^alpha + D))^beta, smooth on the open piece (an algebraic endpoint
       singularity z^(alpha beta) at 0, which adaptive quadrature handles).
    3. beta = 0 or no other ad shown: x is constant on the piece.
    """
    c = float(auction.ctrs[i])
    if c <= 0 or upto <= 0:
        return 0.0
    from scipy import integrate  # imported here: the command line's other paths never pay for it

    e = auction.bids * auction.ctrs
    others = np.array([j for j in range(auction.n_ads) if j != i and e[j] > 0], dtype=np.intp)
    others = others[np.argsort(-e[others], kind="stable")]
    e_o = e[others]
    cuts = np.unique(np.concatenate(([0.0], e_o / c, [upto])))
    cuts = cuts[cuts <= upto]
    alpha, beta, slots, decay = auction.alpha, auction.beta, auction.slots, auction.decay
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        if hi <= lo:
            continue
        mid = 0.5 * (lo + hi)
        above = int(np.sum(e_o > mid * c))
        rank = above + 1
        if rank > slots:
            continue
        pos_i = decay ** (rank - 1)
        ranks_o = np.arange(1, others.size + 1) + (np.arange(others.size) >= above)
        shown_o = ranks_o <= slots
        scale = c * pos_i
        if beta == 0.0 or not shown_o.any():
            total += scale * (hi - lo)
            continue
        log_terms = alpha * (np.log(e_o[shown_o]) + np.log(decay ** (ranks_o[shown_o] - 1.0)))
        top = float(log_terms.max())
        log_d = top + math.log(float(np.exp(log_terms - top).sum()))
        shift = log_d - alpha * math.log(scale)

        def share_power(z: float, shift: float = shift) -> float:
            if z <= 0.0:
                return 0.0
            u = shift - alpha * math.log(z)  # log(D / (A z^alpha))
            log1p_exp = u + math.log1p(math.exp(-u)) if u > 0 else math.log1p(math.exp(u))
            return math.exp(-beta * log1p_exp)

        value, _ = integrate.quad(share_power, float(lo), float(hi), epsabs=1e-15 * (hi - lo), epsrel=1e-11, limit=200)
        total += scale * value
    return total


def own_bid_curve(auction: SummaryAuction, i: int, bids: Sequence[float] | np.ndarray) -> np.ndarray:
    """x_i(z) for each z in ``bids``: ad i's effective CTR as its own bid varies (for plots and tests)."""
    e = auction.bids * auction.ctrs
    out = []
    for z in np.asarray(bids, dtype=np.float64):
        e2 = e.copy()
        e2[i] = z * auction.ctrs[i]
        lay = _layout(e2, auction.ctrs, slots=auction.slots, decay=auction.decay, beta=auction.beta)
        out.append(lay.effective_ctr[i])
    return np.array(out)


@dataclass(frozen=True, eq=False)
class SummaryDraw:
    """One impression: which ads were clicked (independently, each with its effective CTR) and what they paid."""

    clicks: np.ndarray  # (n,) bool
    payment: np.ndarray  # (n,) cost_per_click for a clicked ad, 0 otherwise


def summary_draw(
    auction: SummaryAuction, *, rng: np.random.Generator | None = None, uniforms: Any = None
) -> SummaryDraw:
    """Realised clicks and payments for one impression, from ``uniforms`` (n numbers in [0, 1)) or ``rng``."""
    out = summary_solve(auction)
    if uniforms is None:
        if rng is None:
            raise MechanismError("summary_draw: pass rng or uniforms")
        uniforms = rng.random(auction.n_ads)
    u = np.asarray(uniforms, dtype=np.float64)
    if u.shape != (auction.n_ads,) or not np.all((u >= 0) & (u < 1)):
        raise MechanismError(f"uniforms: expected {auction.n_ads} numbers in [0, 1)")
    clicks = u < out.effective_ctr
    return SummaryDraw(clicks=readonly(clicks), payment=readonly(np.where(clicks, out.cost_per_click, 0.0)))


def simulate_payments(auction: SummaryAuction, *, rng: np.random.Generator, runs: int) -> tuple[np.ndarray, np.ndarray]:
    """``runs`` independent impressions: (clicks (runs, n), payments (runs, n))."""
    out = summary_solve(auction)
    clicks = rng.random((runs, auction.n_ads)) < out.effective_ctr
    return clicks, np.where(clicks, out.cost_per_click, 0.0)


def word_lengths(prominence: Sequence[float] | np.ndarray, budget: int) -> np.ndarray:
    """Integer word counts summing to ``budget``, each about prominence_i · budget (largest remainders).

    1. Normalise the prominences (finite, >= 0) to sum to 1; all zero gives all-zero counts (nothing shown).
    2. Each ad gets floor(share · budget) words.
    3. The words left over (fewer than the number of ads) go one each to the largest fractional remainders,
       ties to the larger prominence, then to the earlier ad. No ad with prominence 0 gets a word.
    """
    prom = np.array(prominence, dtype=np.float64)
    if prom.ndim != 1 or not np.all(np.isfinite(prom)) or np.any(prom < 0):
        raise MechanismError("prominence: expected a list of finite numbers >= 0")
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 0:
        raise MechanismError(f"budget: must be an integer >= 0, got {budget!r}")
    total = float(prom.sum())
    if total == 0 or budget == 0:
        return np.zeros(prom.shape[0], dtype=np.int64)
    quota = prom / total * int(budget)
    words = np.floor(quota).astype(np.int64)
    left = int(budget) - int(words.sum())
    if left > 0:
        remainder = np.where(prom > 0, quota - words, -1.0)
        order = np.lexsort((np.arange(prom.shape[0]), -prom, -remainder))
        words[order[:left]] += 1
    return words


@dataclass(frozen=True, eq=False)
class WordBudgetComparison:
    """Welfare Σ v_i ctr_i pos_i (words_i / L)^beta (ads with no words not shown) for each word budget L."""

    budgets: np.ndarray  # (B,)
    gpa: np.ndarray  # words ∝ GPA prominence
    greedy: np.ndarray  # the top-ranked ad gets every word
    equal_share: np.ndarray  # the shown ads share the words equally
    optimum: float  # GPA's split with real-valued shares: the limit as L grows (the best split when values = bids)


def welfare_by_word_budget(
    auction: SummaryAuction, budgets: Sequence[int] | np.ndarray, *, values: Sequence[float] | np.ndarray | None = None
) -> WordBudgetComparison:
    """Compare GPA's word split with winner-takes-all and equal shares, budget by budget.

    All three use GPA's ranking and positions; only the split of the words differs. Under the click model the
    budget matters only through rounding to whole words (a share is words / L): small budgets leave some shown
    ads with no words at all, large ones approach the real-valued split. ``values`` are the per-click values
    (default: the bids, i.e. reported welfare).
    """
    v = auction.bids if values is None else vector(values, owner="ads", field="value", n=auction.n_ads)
    lay = _layout(
        auction.bids * auction.ctrs, auction.ctrs, slots=auction.slots, decay=auction.decay, beta=auction.beta
    )
    shown = lay.rank > 0
    base = v * auction.ctrs * lay.pos
    equal = shown / max(1, int(shown.sum()))
    top = (lay.rank == 1).astype(np.float64)
    budgets_arr = np.array([int(b) for b in budgets], dtype=np.int64)

    def welfare(words: np.ndarray, budget: int) -> float:
        if budget == 0:
            return 0.0
        share = words / budget
        return float(np.sum(np.where(words > 0, base * share**auction.beta, 0.0)))

    # word_lengths breaks ties by input order; hand it the ads in rank order so that ties go to the better rank.
    by_rank = np.argsort(np.where(shown, lay.rank, auction.n_ads + 1), kind="stable")

    def split(prom: np.ndarray, budget: int) -> np.ndarray:
        words = np.zeros(auction.n_ads, dtype=np.int64)
        words[by_rank] = word_lengths(prom[by_rank], budget)
        return words

    rows = {"gpa": lay.prominence, "greedy": top, "equal": equal}
    out = {k: np.array([welfare(split(p, int(b)), int(b)) for b in budgets_arr]) for k, p in rows.items()}
    optimum = float(np.sum(np.where(shown, base * lay.prominence**auction.beta, 0.0)))
    return WordBudgetComparison(
        budgets=readonly(budgets_arr),
        gpa=readonly(out["gpa"]),
        greedy=readonly(out["greedy"]),
        equal_share=readonly(out["equal"]),
        optimum=optimum,
    )
