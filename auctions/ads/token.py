"""The token auction: several advertisers' language models bid to shape the next token.

After Duetting, Mirrokni, Paes Leme, Xu, Zuo, "Mechanism Design for Large Language Models" (WWW 2024). Agent i
reports a next-token distribution p_i over a shared vocabulary and a bid b_i >= 0; the platform aggregates the
distributions and samples one token from the aggregate.

- **Linear aggregation** q = Σ_i b_i p_i / Σ_i b_i. It is a lottery over agents: pick agent j with probability
  x_j = b_j / Σ b, then sample from p_j. Raising b_i moves every coordinate of q towards p_i (monotone in the
  robust, coordinate-wise preference order), and the selection probability x_i(b_i) = b_i / (b_i + B_-i),
  B_-i = Σ_{k≠i} b_k, is increasing, so Myerson payments make bidding one's value per unit of selection
  probability a dominant strategy. They are realised by *stable sampling*: draw E_j ~ Exp(1), select
  j = argmin_j E_j / b_j (an exponential race, which picks j with probability b_j / Σ b) and charge j its critical
  bid E_j / min_{k≠j} E_k / b_k, the lowest bid with which it would still have won this race; the others pay 0.
  In expectation agent i pays B_-i ln(1 + b_i / B_-i) - b_i B_-i / (b_i + B_-i).
- **Log-linear aggregation** q ∝ Π_i p_i^(b_i / Σ b). It is not a lottery over agents, and it is not monotone:
  raising b_i can move a coordinate of q *away* from p_i (a token on which p_i agrees with the others is
  over-weighted on the way, because the normaliser Σ_t Π p^w drops below 1; see ``docs/advertising.md``). With no
  monotone allocation there is no payment rule that makes bids truthful, so this implementation **charges
  nothing** for log-linear aggregation: it is a free, non-strategic aggregation (for bids fixed by contract, not
  by an auction). ``selection_probability`` then carries each agent's exponent b_i / Σ b, its weight in the
  aggregate; no agent is selected.

When every bid is 0, every agent gets the same weight 1/n and nobody pays. An agent with bid 0 among positive
bids has weight 0 (in the log-linear rule p^0 = 1, also where p = 0: a zero bid has no say).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auctions.ads.validation import check_ids, check_range, default_ids, readonly, vector
from auctions.mechanism import MechanismError

__all__ = [
    "AGGREGATIONS",
    "TokenAuction",
    "TokenDraw",
    "TokenOutcome",
    "proportional_payment",
    "realised_payments",
    "simulate_payments",
    "token_auction",
    "token_draw",
    "token_solve",
]

AGGREGATIONS = ("linear", "log_linear")
# Reported distributions are usually float32 softmax outputs written to JSON: they sum to 1 only to about 1e-7.
SUM_TOLERANCE = 1e-6
# Below this ratio own/others the closed form log1p(t) - t/(1+t) loses digits to cancellation; use its series.
_SERIES_BELOW = 1e-2
_SERIES = tuple((-1.0) ** k * (k - 1) / k for k in range(2, 12))  # coefficients of t^2 .. t^11


@dataclass(frozen=True, eq=False)
class TokenAuction:
    """One token's auction: ids, bids (n,), next-token distributions (n, V), and the aggregation rule.

    The constructor copies and validates its input (lists or arrays) and renormalises each distribution to sum
    to exactly 1 after checking it sums to 1 within ``SUM_TOLERANCE``. Errors name the agent:
    ``agents[2].distribution: sums to 0.9, must sum to 1``.
    """

    ids: tuple[str, ...]
    bids: np.ndarray
    distributions: np.ndarray
    aggregation: str = "linear"

    def __post_init__(self) -> None:
        bids = vector(self.bids, owner="agents", field="bid")
        n = bids.shape[0]
        if n == 0:
            raise MechanismError("agents: at least one agent is required")
        ids = check_ids(self.ids, owner="agents", n=n)
        check_range(bids, owner="agents", field="bid")
        with np.errstate(over="ignore"):
            if not np.isfinite(bids.sum()):
                raise MechanismError("agents[].bid: the total bid overflows")
        dists = _distributions(self.distributions, n)
        if self.aggregation not in AGGREGATIONS:
            raise MechanismError(f"aggregation: expected 'linear' or 'log_linear', got {self.aggregation!r}")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "bids", readonly(bids))
        object.__setattr__(self, "distributions", readonly(dists))

    @property
    def n_agents(self) -> int:
        return len(self.ids)

    @property
    def vocabulary(self) -> int:
        return int(self.distributions.shape[1])


def _distributions(raw: Any, n: int) -> np.ndarray:
    rows = list(raw)
    if len(rows) != n:
        raise MechanismError(f"agents[].distribution: {len(rows)} distributions for {n} agents")
    out: list[np.ndarray] = []
    for i, row in enumerate(rows):
        try:
            arr = np.array(row, dtype=np.float64)
        except (TypeError, ValueError):
            raise MechanismError(f"agents[{i}].distribution: expected a list of numbers") from None
        if arr.ndim != 1 or arr.shape[0] == 0:
            raise MechanismError(f"agents[{i}].distribution: expected a non-empty list of numbers")
        if out and arr.shape[0] != out[0].shape[0]:
            raise MechanismError(
                f"agents[{i}].distribution: {arr.shape[0]} probabilities, expected {out[0].shape[0]} "
                "(as many as agents[0].distribution: one per token of the shared vocabulary)"
            )
        for t, p in enumerate(arr):
            if not np.isfinite(p) or p < 0:
                raise MechanismError(f"agents[{i}].distribution[{t}]: must be a finite number >= 0, got {float(p)!r}")
        total = float(arr.sum())
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise MechanismError(
                f"agents[{i}].distribution: sums to {total!r}, must sum to 1 (within {SUM_TOLERANCE:g})"
            )
        out.append(arr / total)
    return np.stack(out)


def token_auction(
    *,
    bids: Sequence[float] | np.ndarray,
    distributions: Sequence[Sequence[float]] | np.ndarray,
    aggregation: str = "linear",
    ids: Sequence[str] | None = None,
) -> TokenAuction:
    """Build a :class:`TokenAuction`; ids default to ``a0, a1, ...``."""
    n = len(bids)
    return TokenAuction(
        ids=tuple(ids) if ids is not None else default_ids("a", n),
        bids=np.asarray(bids, dtype=np.float64),
        distributions=distributions,  # type: ignore[arg-type]  # validated and converted in __post_init__
        aggregation=aggregation,
    )


@dataclass(frozen=True, eq=False)
class TokenOutcome:
    """What the auction does in expectation. Money is in the bids' currency."""

    aggregate: np.ndarray  # (V,) the distribution the token is drawn from
    weights: np.ndarray  # (n,) b_i / Σ b (1/n each when every bid is 0)
    selection_probability: np.ndarray  # (n,) linear: P(agent i is selected); log-linear: its exponent (= weights)
    expected_payment: np.ndarray  # (n,) linear: Myerson payments; log-linear: 0
    revenue: float


@dataclass(frozen=True, eq=False)
class TokenDraw:
    """One realised token. ``selected`` is the agent the token was sampled from (None under log-linear)."""

    token: int
    selected: int | None
    payment: np.ndarray  # (n,) the selected agent's critical bid, 0 for everybody else
    exponentials: np.ndarray | None  # (n,) the race's E_j (None under log-linear)


def _weights(bids: np.ndarray) -> np.ndarray:
    total = float(bids.sum())
    if total > 0:
        return bids / total
    return np.full(bids.shape[0], 1.0 / bids.shape[0])


def others_total(values: np.ndarray) -> np.ndarray:
    """Σ_{k≠i} v_k for every i, from prefix and suffix sums (total - v_i would cancel when v_i dominates)."""
    prefix = np.concatenate(([0.0], np.cumsum(values)[:-1]))
    suffix = np.concatenate((np.cumsum(values[::-1])[::-1][1:], [0.0]))
    return prefix + suffix


def proportional_payment(own: np.ndarray | float, others: np.ndarray | float) -> np.ndarray:
    """The Myerson payment of the proportional allocation x(z) = z / (z + others) at bid ``own``.

    P = own·x(own) - ∫_0^own x(z) dz = others·f(own / others), f(t) = ln(1 + t) - t / (1 + t) >= 0. Computed
    without cancellation: by its Taylor series (Σ_{k>=2} (-1)^k (k-1)/k t^k) for t < 0.01, and for t >= 1 in
    terms of 1/t so that neither t nor others·ln(t) overflows. 0 when either argument is 0.
    """
    own_a, others_a = np.broadcast_arrays(np.asarray(own, dtype=np.float64), np.asarray(others, dtype=np.float64))
    out = np.zeros(own_a.shape)
    live = (own_a > 0) & (others_a > 0)
    o, s = own_a[live], others_a[live]
    with np.errstate(over="ignore", divide="ignore"):
        t = o / s
        inv = s / o
    f = np.empty(o.shape)
    small = t < _SERIES_BELOW
    ts = t[small]
    acc = np.zeros(ts.shape)
    for c in reversed(_SERIES):
        acc = acc * ts + c
    f[small] = acc * ts * ts
    mid = ~small & (t < 1.0)
    f[mid] = np.log1p(t[mid]) - t[mid] / (1.0 + t[mid])
    big = ~small & ~mid
    f[big] = (np.log(o[big]) - np.log(s[big]) + np.log1p(inv[big])) - 1.0 / (1.0 + inv[big])
    out[live] = s * np.maximum(f, 0.0)
    return out


def token_solve(auction: TokenAuction) -> TokenOutcome:
    """The aggregate, each agent's selection probability (or weight) and expected payment.

    1. Weights w = b / Σ b (1/n each when every bid is 0).
    2. Linear: q = w @ P; x_i = w_i; E[pay_i] = B_-i ln(1 + b_i / B_-i) - b_i B_-i / (b_i + B_-i), with B_-i from
       prefix and suffix sums and the cancellation-free form of :func:`proportional_payment`.
    3. Log-linear: log q = Σ_i w_i log p_i - log Z in log space (terms with w_i = 0 are dropped, so a zero bid has
       no say); raises when every token has an agent with positive weight and probability 0. Pays 0.
    """
    bids, dists = auction.bids, auction.distributions
    weights = _weights(bids)
    if auction.aggregation == "linear":
        aggregate = weights @ dists
        aggregate = aggregate / aggregate.sum()
        if float(bids.sum()) > 0:
            payment = np.minimum(proportional_payment(bids, others_total(bids)), bids * weights)
        else:
            payment = np.zeros_like(bids)
        selection = weights
    else:
        aggregate = _log_linear(weights, dists)
        payment = np.zeros_like(bids)
        selection = weights
    return TokenOutcome(
        aggregate=readonly(aggregate),
        weights=readonly(weights.copy()),
        selection_probability=readonly(selection.copy()),
        expected_payment=readonly(payment),
        revenue=float(payment.sum()),
    )


def _log_linear(weights: np.ndarray, dists: np.ndarray) -> np.ndarray:
    voice = weights > 0
    with np.errstate(divide="ignore"):
        logs = np.log(dists[voice])
    log_q = np.sum(weights[voice][:, None] * logs, axis=0)
    top = float(np.max(log_q))
    if not np.isfinite(top):
        raise MechanismError(
            "agents[].distribution: the log-linear aggregate is 0 on every token (each token has probability 0 "
            "under some agent with a positive bid); use linear aggregation"
        )
    q = np.exp(log_q - top)
    return q / q.sum()


def _exponentials(auction: TokenAuction, exponentials: Any) -> np.ndarray:
    e = np.asarray(exponentials, dtype=np.float64)
    if e.shape[-1:] != (auction.n_agents,):
        raise MechanismError(f"exponentials: expected {auction.n_agents} per draw (one per agent), got shape {e.shape}")
    bad = np.argwhere(~(np.isfinite(e) & (e > 0)))
    if bad.size:
        at = tuple(int(k) for k in bad[0])
        raise MechanismError(f"exponentials{list(at)}: must be a finite number > 0, got {float(e[at])!r}")
    return e


def realised_payments(auction: TokenAuction, exponentials: Any) -> tuple[np.ndarray, np.ndarray]:
    """Stable sampling for given race variables: (selected agent, payments), vectorised over leading axes.

    ``exponentials`` has shape (..., n). Returns ``selected`` of shape (...) and ``payment`` of shape (..., n).

    1. Ratios E_j / b_j (infinite for a zero bid; E_j itself when every bid is 0, a uniform choice).
    2. The winner j is the smallest ratio; m_j, the smallest of the *others'* ratios, is the second smallest.
    3. j pays E_j / m_j (0 when m_j is infinite: nobody else bid), capped at b_j against rounding; others pay 0.
       Under log-linear aggregation nobody is selected (``selected`` is -1) and nobody pays.
    """
    e = _exponentials(auction, exponentials)
    bids = auction.bids
    n = bids.shape[0]
    total = float(bids.sum())
    payment = np.zeros(e.shape)
    if total > 0:
        with np.errstate(divide="ignore", over="ignore"):
            ratios = np.where(bids > 0, e / np.where(bids > 0, bids, 1.0), np.inf)
    else:
        ratios = e
    if auction.aggregation != "linear":
        return np.full(e.shape[:-1], -1, dtype=np.intp), payment
    selected = np.argmin(ratios, axis=-1)
    if total == 0 or n == 1:
        return selected, payment
    second = np.partition(ratios, 1, axis=-1)[..., 1]
    e_win = np.take_along_axis(e, selected[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        critical = np.where(np.isfinite(second), e_win / second, 0.0)
    critical = np.minimum(critical, bids[selected])
    np.put_along_axis(payment, selected[..., None], critical[..., None], axis=-1)
    return selected, payment


def token_draw(auction: TokenAuction, *, rng: np.random.Generator, exponentials: Any = None) -> TokenDraw:
    """One realised token and its payments: the race (given ``exponentials`` or drawn from ``rng``), then the token.

    Linear: the token is sampled from the selected agent's distribution. Log-linear: it is sampled from the
    aggregate, nobody is selected and nobody pays.
    """
    if auction.aggregation != "linear":
        q = token_solve(auction).aggregate
        token = int(rng.choice(q.shape[0], p=q))
        return TokenDraw(token=token, selected=None, payment=readonly(np.zeros(auction.n_agents)), exponentials=None)
    e = _exponentials(auction, exponentials if exponentials is not None else rng.exponential(size=auction.n_agents))
    selected, payment = realised_payments(auction, e)
    j = int(selected)
    token = int(rng.choice(auction.vocabulary, p=auction.distributions[j]))
    return TokenDraw(token=token, selected=j, payment=readonly(payment), exponentials=readonly(e.copy()))


def simulate_payments(auction: TokenAuction, *, rng: np.random.Generator, runs: int) -> tuple[np.ndarray, np.ndarray]:
    """``runs`` independent races: (selected (runs,), payments (runs, n)). Their mean estimates the expectation."""
    return realised_payments(auction, rng.exponential(size=(runs, auction.n_agents)))
