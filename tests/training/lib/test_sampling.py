from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from training.lib.corpus import STYLES, classify_style, demo_prompts
from training.lib.sampling import Candidate, base_logweights, sample_candidates, sequence_logprobs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def drawn(tiny):
    model, tokenizer = tiny
    return sample_candidates(model, tokenizer, demo_prompts()[:4], 8, seed=11, max_new_tokens=64, batch_size=12)


def test_it_draws_n_candidates_per_prompt_that_end_at_eos(drawn):
    assert [len(row) for row in drawn] == [8, 8, 8, 8]
    flat = [c for row in drawn for c in row]
    assert all(isinstance(c, Candidate) and c.proposal_logprob is None for c in flat)
    assert sum(c.finished for c in flat) >= 0.9 * len(flat)
    assert all("<|endoftext|>" not in c.text and "<pad>" not in c.text for c in flat)
    assert all(c.base_logprob < 0 and c.num_tokens >= 1 for c in flat)


def test_sampling_is_deterministic_in_the_seed(tiny, drawn):
    model, tokenizer = tiny
    again = sample_candidates(model, tokenizer, demo_prompts()[:4], 8, seed=11, max_new_tokens=64, batch_size=12)
    other = sample_candidates(model, tokenizer, demo_prompts()[:4], 8, seed=12, max_new_tokens=64, batch_size=12)
    assert again == drawn
    assert [c.text for r in other for c in r] != [c.text for r in drawn for c in r]


def test_stored_logprobs_match_a_recomputation_with_other_padding(tiny, drawn):
    model, tokenizer = tiny
    prompts = [p for p, row in zip(demo_prompts()[:4], drawn, strict=True) for _ in row]
    texts = [c.text for row in drawn for c in row]
    for bs in (1, 5):
        again = sequence_logprobs(model, tokenizer, prompts, texts, batch_size=bs)
        np.testing.assert_allclose(again, [c.base_logprob for row in drawn for c in row], atol=1e-4)


def test_the_tiny_model_samples_a_real_mix_of_styles(tiny):
    model, tokenizer = tiny
    drawn = sample_candidates(model, tokenizer, demo_prompts(), 16, seed=0, max_new_tokens=64, batch_size=64)
    counts = Counter(classify_style(c.text) for row in drawn for c in row)
    print("style mix", dict(counts))
    for style in STYLES:
        assert counts[style] >= 0.1 * 128, counts


def test_tempered_sampling_records_the_proposal_and_base_weights(tiny):
    model, tokenizer = tiny
    drawn = sample_candidates(
        model, tokenizer, demo_prompts()[:2], 4, seed=3, max_new_tokens=64, batch_size=8, temperature=0.7
    )
    assert all(c.proposal_logprob is not None for r in drawn for c in r)
    lw = base_logweights(drawn, proposal_is_base=False)
    assert lw[0][0] == pytest.approx(drawn[0][0].base_logprob - drawn[0][0].proposal_logprob)
    assert base_logweights(drawn, proposal_is_base=True) == [[0.0] * 4, [0.0] * 4]
