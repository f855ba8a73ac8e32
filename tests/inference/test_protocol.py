"""Request validation and exact delivery's choice, without a model."""

from __future__ import annotations

import numpy as np
import pytest

from inference.exact import aggregate_reward, choose, group_rewards
from inference.protocol import ProtocolError, parse_completion, parse_exact, parse_lora

LIMIT = 128


def test_a_minimal_request_gets_openais_defaults():
    req = parse_completion({"model": "tiny", "prompt": "hi"}, max_tokens_limit=LIMIT)
    assert (req.max_tokens, req.temperature, req.top_p, req.n, req.stream, req.logprobs) == (16, 1.0, 1.0, 1, False, None)
    assert req.stop == () and req.exact is None and req.request_id.startswith("cmpl-")


def test_a_prompt_list_of_one_and_a_single_stop_string_are_accepted():
    req = parse_completion({"model": "m", "prompt": ["hi"], "stop": "\n"}, max_tokens_limit=LIMIT)
    assert req.prompt == "hi" and req.stop == ("\n",)


@pytest.mark.parametrize(
    "patch, param, code",
    [
        ({"max_tokens": LIMIT + 1}, "max_tokens", "max_tokens_over_limit"),
        ({"n": 9}, "n", "n_over_limit"),
        ({"n": True}, "n", "invalid_value"),
        ({"temperature": float("nan")}, "temperature", "invalid_value"),
        ({"top_p": 1.5}, "top_p", "invalid_value"),
        ({"seed": "x"}, "seed", "invalid_value"),
        ({"stream": "yes"}, "stream", "invalid_value"),
        ({"stop": [1]}, "stop", "invalid_value"),
        ({"echo": True}, "echo", "invalid_value"),
        ({"logprobs": -1}, "logprobs", "invalid_value"),
    ],
)
def test_each_bad_parameter_is_named(patch, param, code):
    with pytest.raises(ProtocolError) as info:
        parse_completion({"model": "m", "prompt": "hi", **patch}, max_tokens_limit=LIMIT)
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.code == code
    assert set(info.value.body()["error"]) == {"message", "type", "param", "code"}


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(ProtocolError) as info:
        parse_completion([1], max_tokens_limit=LIMIT)
    assert info.value.code == "invalid_json"


def test_lora_names_and_paths_are_required():
    assert parse_lora({"lora_name": "a", "lora_path": "/p"}, need_path=True) == ("a", "/p")
    with pytest.raises(ProtocolError):
        parse_lora({"lora_name": "__base__", "lora_path": "/p"}, need_path=True)
    with pytest.raises(ProtocolError):
        parse_lora({"lora_name": "a"}, need_path=True)


RUBRIC = {"kind": "rubric", "phrases": {"good": 1.0}}


def test_exact_delivery_aggregates_bid_weighted_normalised_rewards():
    spec = parse_exact(
        {
            "k": 2,
            "kl_weight": 1.0,
            "groups": [
                {"bid": 2.0, "reward_model": RUBRIC, "normaliser": {"lo": 0.0, "hi": 2.0}},
                {"bid": 1.0, "reward_model": RUBRIC, "normaliser": {"lo": 0.0, "hi": 1.0}},
            ],
        }
    )
    assert spec is not None
    r = aggregate_reward(group_rewards(spec), "p", ["good", " good good good ", "bad"])
    # 2 * clip(1/2) + 1 * clip(1/1) = 2; 2 * clip(3/2 -> 1) + 1 * 1 = 3; nothing for "bad"
    assert r.tolist() == [2.0, 3.0, 0.0]


def test_exact_delivery_resampling_follows_the_target_on_a_toy_distribution():
    """Three answers; the proposal q, the base pi0 and rewards known: the chosen frequencies over many draws of
    K-sample resampling approach pi* ∝ pi0 exp(R/λ) (self-normalised resampling is consistent as K grows)."""
    rng = np.random.default_rng(0)
    q = np.array([0.6, 0.3, 0.1])
    pi0 = np.array([0.2, 0.3, 0.5])
    reward = np.array([1.0, 0.0, 0.5])
    target = pi0 * np.exp(reward / 0.5)
    target /= target.sum()
    counts = np.zeros(3)
    for _ in range(2000):
        draws = rng.choice(3, size=256, p=q)
        c = choose(
            log_q=np.log(q[draws]).tolist(),
            log_pi0=np.log(pi0[draws]).tolist(),
            reward=reward[draws],
            kl_weight=0.5,
            rng=rng,
        )
        assert 1.0 <= c.ess <= 256.0
        counts[draws[c.index]] += 1
    assert np.abs(counts / counts.sum() - target).max() < 0.03


def test_a_reward_model_that_cannot_be_built_is_a_400_naming_it():
    spec = parse_exact(
        {"k": 1, "kl_weight": 1.0, "groups": [{"bid": 1, "reward_model": {"kind": "nope"}, "normaliser": {"lo": 0, "hi": 1}}]}
    )
    assert spec is not None
    with pytest.raises(ProtocolError) as info:
        group_rewards(spec)
    assert info.value.param == "exact_delivery.groups[0].reward_model"
