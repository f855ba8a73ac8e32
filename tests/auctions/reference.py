"""High-precision reference (mpmath) for the mechanism, straight from the formulas in the mechanism notes.

Slow and simple on purpose: it re-solves without each group and evaluates all three payment formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath as mp

from auctions.mechanism import Instance

DPS = 80


@dataclass(frozen=True)
class Reference:
    welfare: mp.mpf
    kl_to_base: mp.mpf
    policy: list[list[mp.mpf]]
    expected_reward: list[mp.mpf]
    payment_welfare: list[mp.mpf]  # ASW_-i(q_-i) - ASW_-i(q*)
    payment_kl: list[mp.mpf]  # λ Σ μ KL(q* || q_-i)
    payment_logz: list[mp.mpf]  # Σ μ (w_i E_q*[r_i] - λ (log Z - log Z_-i))


def _solve_prompt(log_q0, rows, bids, lam, skip=None):
    agg = [mp.fsum(bids[i] * rows[i][k] for i in range(len(bids)) if i != skip) for k in range(len(log_q0))]
    expo = [log_q0[k] + agg[k] / lam for k in range(len(log_q0))]
    top = max(expo)
    log_z = top + mp.log(mp.fsum(mp.exp(e - top) for e in expo))
    log_q = [e - log_z for e in expo]
    return agg, log_z, log_q


def reference(inst: Instance) -> Reference:
    with mp.workdps(DPS):
        lam = mp.mpf(inst.kl_weight)
        bids = [mp.mpf(float(b)) for b in inst.bids]
        mu = [mp.mpf(float(m)) for m in inst.prompt_weights]
        n = len(bids)
        welfare = mp.mpf(0)
        kl_base = mp.mpf(0)
        policy = []
        er = [mp.mpf(0)] * n
        p_w = [mp.mpf(0)] * n
        p_kl = [mp.mpf(0)] * n
        p_z = [mp.mpf(0)] * n
        for p, (base, rew) in enumerate(zip(inst.base_logweights, inst.rewards, strict=True)):
            b = [mp.mpf(float(x)) for x in base]
            top = max(b)
            lse = top + mp.log(mp.fsum(mp.exp(x - top) for x in b))
            log_q0 = [x - lse for x in b]
            rows = [[mp.mpf(float(x)) for x in rew[i]] for i in range(n)]
            agg, log_z, log_q = _solve_prompt(log_q0, rows, bids, lam)
            q = [mp.exp(x) for x in log_q]
            policy.append(q)
            kl0 = mp.fsum(q[k] * (log_q[k] - log_q0[k]) for k in range(len(q)))
            welfare += mu[p] * lam * log_z
            kl_base += mu[p] * kl0
            for i in range(n):
                e_r = mp.fsum(q[k] * rows[i][k] for k in range(len(q)))
                er[i] += mu[p] * e_r
                agg_i, log_z_i, log_q_i = _solve_prompt(log_q0, rows, bids, lam, skip=i)
                q_i = [mp.exp(x) for x in log_q_i]
                kl_i0 = mp.fsum(q_i[k] * (log_q_i[k] - log_q0[k]) for k in range(len(q)))
                asw_alone = mp.fsum(q_i[k] * agg_i[k] for k in range(len(q))) - lam * kl_i0
                asw_at_star = mp.fsum(q[k] * agg_i[k] for k in range(len(q))) - lam * kl0
                p_w[i] += mu[p] * (asw_alone - asw_at_star)
                p_kl[i] += mu[p] * lam * mp.fsum(q[k] * (log_q[k] - log_q_i[k]) for k in range(len(q)))
                p_z[i] += mu[p] * (bids[i] * e_r - lam * (log_z - log_z_i))
        return Reference(welfare, kl_base, policy, er, p_w, p_kl, p_z)
