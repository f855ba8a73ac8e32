from __future__ import annotations

import numpy as np
import pytest

from auctions.mechanism import Instance, make_instance


def random_instance(
    rng: np.random.Generator,
    *,
    n: int = 3,
    prompts: int = 2,
    candidates: tuple[int, int] = (1, 6),
    kl_weight: float | None = None,
    bid_range: tuple[float, float] = (0.0, 2.0),
) -> Instance:
    sizes = rng.integers(candidates[0], candidates[1] + 1, prompts)
    return make_instance(
        kl_weight=float(kl_weight if kl_weight is not None else rng.uniform(0.1, 2.0)),
        group_ids=[f"g{i}" for i in range(n)],
        bids=rng.uniform(*bid_range, n),
        base_logweights=[rng.normal(size=k) for k in sizes],
        rewards=[rng.random((n, k)) for k in sizes],
        prompt_weights=rng.uniform(0.1, 1.0, prompts),
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
