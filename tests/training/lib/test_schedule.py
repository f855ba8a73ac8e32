from __future__ import annotations

from collections import Counter

from training.lib.config import TrainConfig
from training.lib.schedule import batch_schedule

CANDIDATES = [["a", "b", "c", "d"], ["e", "f"], ["g", "h", "i"]]
WEIGHTS = [[0.1, 0.2, 0.3, 0.4], [1.0, 0.0], [1.0, 1.0, 2.0]]


def test_a_candidate_normalised_step_trains_on_whole_prompts():
    schedule = batch_schedule(TrainConfig(steps=6, batch_size=9), CANDIDATES, WEIGHTS)
    assert len(schedule) == 6
    for rows in schedule:
        per_prompt = Counter(i for i, _ in rows)
        assert sum(c // len(CANDIDATES[i]) for i, c in per_prompt.items()) == 9 // 4  # prompts drawn per step
        for i in per_prompt:
            assert per_prompt[i] % len(CANDIDATES[i]) == 0


def test_a_plain_step_draws_batch_size_pairs_by_mu_times_q_star():
    schedule = batch_schedule(TrainConfig(steps=200, batch_size=8, loss="plain"), CANDIDATES, WEIGHTS, [1, 0, 1])
    rows = [r for step in schedule for r in step]
    assert all(len(step) == 8 for step in schedule)
    assert (1, 0) not in rows and (1, 1) not in rows  # mu = 0 for prompt 1
    counts = Counter(rows)
    assert counts[(0, 3)] > counts[(0, 0)] and counts[(2, 2)] > counts[(2, 0)]


def test_the_schedule_depends_only_on_the_seed_and_the_step():
    a = batch_schedule(TrainConfig(steps=5, seed=3), CANDIDATES, WEIGHTS)
    assert a == batch_schedule(TrainConfig(steps=5, seed=3), CANDIDATES, WEIGHTS)
    assert a[:3] == batch_schedule(TrainConfig(steps=3, seed=3), CANDIDATES, WEIGHTS)  # a resumed run draws the same
    assert a != batch_schedule(TrainConfig(steps=5, seed=4), CANDIDATES, WEIGHTS)
