from __future__ import annotations

import numpy as np
import pytest

from training.lib.corpus import STYLES, preference_pairs_for_style, rubric_for_style
from training.lib.rewards import (
    AffineNormaliser,
    BTRewardModel,
    DirectScoresRewardModel,
    RubricRewardModel,
    candidate_key,
    fit_bradley_terry,
    reward_model_from_dict,
)


@pytest.mark.slow
@pytest.mark.parametrize("style", STYLES)
def test_bradley_terry_ranks_held_out_pairs_above_chance(style):
    model = fit_bradley_terry(preference_pairs_for_style(style, 100, seed=1), seed=1, holdout_fraction=0.2)
    print(
        f"BT {style}: held-out accuracy {model.accuracy:.3f} on {model.n_holdout} pairs, train {model.train_accuracy:.3f}"
    )
    assert model.n_holdout == 20 and model.n_train == 80
    assert model.accuracy is not None and model.accuracy >= 0.8
    # the fitted model generalises to fresh pairs it never saw
    fresh = preference_pairs_for_style(style, 40, seed=99)
    p = [x[0] for x in fresh]
    wins = model.score(p, [x[1] for x in fresh]) > model.score(p, [x[2] for x in fresh])
    assert wins.mean() >= 0.8


@pytest.mark.slow
def test_bradley_terry_survives_a_json_round_trip():
    model = fit_bradley_terry(preference_pairs_for_style("formal", 30, seed=0), seed=0)
    again = reward_model_from_dict(model.to_dict())
    assert isinstance(again, BTRewardModel)
    prompts, responses = ["Question: hi\nAnswer: "] * 2, ["Thank you for your inquiry. Kind regards.", "Yes!"]
    np.testing.assert_allclose(again.score(prompts, responses), model.score(prompts, responses))


def test_rubric_scores_phrases_and_target_length():
    rm = RubricRewardModel({"thank you": 1.0, "!": -0.5}, target_length=4)
    s = rm.score(["p"] * 3, ["Thank you, it works now.", "Wow! Wow! Wow! Wow!", "one two three four"])
    assert s[0] == pytest.approx(1.0 - 1 / 4)
    assert s[1] == pytest.approx(-0.5 * 3)  # counts cap at 3; 4 words hit the target
    assert s[2] == pytest.approx(0.0)
    assert reward_model_from_dict(rm.to_dict()) == rm
    phrases, target = rubric_for_style("concise")
    assert target == 8 and phrases


def test_rubric_rejects_a_nonpositive_target_length():
    with pytest.raises(ValueError):
        RubricRewardModel({"a": 1.0}, target_length=0)


def test_direct_scores_return_the_given_scores_for_candidates():
    rm = DirectScoresRewardModel({candidate_key("p", "a"): 0.2, candidate_key("p", "b"): 0.9})
    np.testing.assert_allclose(rm.score(["p", "p"], ["b", "a"]), [0.9, 0.2])
    assert reward_model_from_dict(rm.to_dict()) == rm


@pytest.mark.slow
def test_direct_scores_extend_to_new_text_by_nearest_candidates():
    rm = DirectScoresRewardModel(
        {
            candidate_key("Question: x\nAnswer: ", "Thank you for contacting us. Kind regards."): 1.0,
            candidate_key("Question: x\nAnswer: ", "Awesome! You will love it!"): 0.0,
        },
        k=1,
    )
    s = rm.score(
        ["Question: x\nAnswer: "] * 2, ["Thank you for your inquiry. Kind regards.", "Great question! Love it!"]
    )
    assert s[0] > s[1]


def test_affine_normaliser_is_min_max_and_reusable_on_fresh_scores():
    norm = AffineNormaliser.fit([[1.0, 3.0], [2.0, 5.0, 4.0]])
    assert (norm.lo, norm.hi) == (1.0, 5.0)
    np.testing.assert_allclose(norm.apply([1.0, 3.0, 5.0]), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(norm.apply([-10.0, 10.0]), [0.0, 1.0])  # fresh samples are clipped
    assert np.all(AffineNormaliser.fit([2.0, 2.0]).apply([1.0, 2.0, 3.0]) == 0.0)  # constant -> constant
    assert AffineNormaliser.from_dict(norm.to_dict()) == norm


def test_affine_normaliser_matches_the_auction_helper():
    mechanism = pytest.importorskip("auctions.mechanism")
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4, 6))
    np.testing.assert_allclose(AffineNormaliser.fit(scores).apply(scores), mechanism.normalise_scores(scores))
    np.testing.assert_allclose(
        AffineNormaliser.fit(np.ones(5)).apply(np.ones(5)), mechanism.normalise_scores(np.ones(5))
    )
