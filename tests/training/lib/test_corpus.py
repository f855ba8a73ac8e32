from __future__ import annotations

import re
from collections import Counter

from training.lib.corpus import STYLES, build_corpus, classify_style, demo_prompts, heldout_prompts


def test_corpus_is_deterministic_and_balanced_over_styles():
    a, b = build_corpus(3), build_corpus(3)
    assert a == b
    assert a != build_corpus(4)
    counts = Counter(style for _, _, style in a)
    assert set(counts) == set(STYLES) and len(set(counts.values())) == 1
    assert all(classify_style(r) == s for _, r, s in a)


def test_demo_and_heldout_prompts_are_disjoint():
    assert len(demo_prompts()) == 8 and len(heldout_prompts()) == 8
    assert not set(demo_prompts()) & set(heldout_prompts())


def test_ratings_out_of_ten_never_exceed_ten():
    ratings = [int(m) for _, response, _ in build_corpus(seed=0) for m in re.findall(r"(\d+) out of ten", response)]
    assert ratings and max(ratings) <= 10
