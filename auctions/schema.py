"""JSON schema v1 of the auction command line: instance in, result out.

Instance::

    {"kl_weight": float,
     "groups": [{"id": str, "bid": float}, ...],
     "prompts": [{"weight": float (optional, default 1),
                  "base_logweights": [float, ...],
                  "rewards": {"<group id>": [float, ...], ...}}, ...]}

Result::

    {"policy": [[float, ...], ...],
     "groups": {"<group id>": {"payment": float, "value": float, "utility": float, "expected_reward": float}},
     "welfare": float, "kl_to_base": float, "revenue": float}

Fields not listed are ignored. Every error is a :class:`MechanismError` whose message names the field, group,
prompt and candidate at fault (indices count from 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from auctions.mechanism import Instance, MechanismError, Outcome, make_instance

SCHEMA_VERSION = 1


def json_number(value: Any, where: str) -> float:
    # bool is an int subclass in Python, but true/false is never a meaningful number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MechanismError(f"{where}: expected a number, got {describe(value)}")
    try:
        result = float(value)
    except OverflowError:  # an integer literal beyond float range
        raise MechanismError(f"{where}: {str(value)[:20]}... is not a finite number") from None
    if not math.isfinite(result):
        raise MechanismError(f"{where}: {value!r} is not a finite number")
    return result


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return repr(value)


def json_field(obj: dict[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise MechanismError(f"{where}: missing field {name!r}")
    return obj[name]


def json_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MechanismError(f"{where}: expected a list, got {describe(value)}")
    return value


def json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MechanismError(f"{where}: expected an object, got {describe(value)}")
    return value


def instance_from_json(data: Any) -> Instance:
    """Parse and validate a schema-v1 instance (a decoded JSON object)."""
    root = json_object(data, "instance")
    kl_weight = json_number(json_field(root, "kl_weight", "instance"), "kl_weight")
    if kl_weight <= 0:
        raise MechanismError(f"kl_weight: {kl_weight!r} must be > 0")

    groups = json_list(json_field(root, "groups", "instance"), "groups")
    ids: list[str] = []
    bids: list[float] = []
    for i, raw in enumerate(groups):
        group = json_object(raw, f"groups[{i}]")
        gid = json_field(group, "id", f"groups[{i}]")
        if not isinstance(gid, str) or not gid:
            raise MechanismError(f"groups[{i}].id: expected a non-empty string, got {describe(gid)}")
        if gid in ids:
            raise MechanismError(f"group {gid!r}: the id appears twice in groups")
        bid = json_number(json_field(group, "bid", f"group {gid!r}"), f"group {gid!r}: bid")
        if bid < 0:
            raise MechanismError(f"group {gid!r}: bid {bid!r} must be >= 0")
        ids.append(gid)
        bids.append(bid)

    prompts = json_list(json_field(root, "prompts", "instance"), "prompts")
    if not prompts:
        raise MechanismError("prompts: at least one prompt is required")
    weights: list[float] = []
    base_logweights: list[list[float]] = []
    rewards: list[list[list[float]]] = []
    for p, raw in enumerate(prompts):
        prompt = json_object(raw, f"prompt {p}")
        weight = json_number(prompt["weight"], f"prompt {p}: weight") if "weight" in prompt else 1.0
        if weight < 0:
            raise MechanismError(f"prompt {p}: weight {weight!r} must be >= 0")
        weights.append(weight)
        base_raw = json_list(json_field(prompt, "base_logweights", f"prompt {p}"), f"prompt {p}: base_logweights")
        if not base_raw:
            raise MechanismError(f"prompt {p}: at least one candidate is required (base_logweights is empty)")
        base = [json_number(x, f"prompt {p}, candidate {k}: base log-weight") for k, x in enumerate(base_raw)]
        base_logweights.append(base)
        by_group = json_object(json_field(prompt, "rewards", f"prompt {p}"), f"prompt {p}: rewards")
        for gid in by_group:
            if gid not in ids:
                raise MechanismError(f"group {gid!r}, prompt {p}: rewards for a group that is not in groups")
        matrix = []
        for gid in ids:
            if gid not in by_group:
                raise MechanismError(f"group {gid!r}, prompt {p}: no rewards (every group must score every candidate)")
            row = json_list(by_group[gid], f"group {gid!r}, prompt {p}: rewards")
            if len(row) != len(base):
                raise MechanismError(
                    f"group {gid!r}, prompt {p}: {len(row)} rewards for {len(base)} candidates "
                    "(every group must score every candidate)"
                )
            values = []
            for k, x in enumerate(row):
                r = json_number(x, f"group {gid!r}, prompt {p}, candidate {k}: reward")
                if not 0.0 <= r <= 1.0:
                    raise MechanismError(f"group {gid!r}, prompt {p}, candidate {k}: reward {r!r} is not in [0, 1]")
                values.append(r)
            matrix.append(values)
        rewards.append(matrix)
    if not sum(weights) > 0:
        raise MechanismError("prompts: the prompt weights must not all be 0")

    return make_instance(
        kl_weight=kl_weight,
        group_ids=ids,
        bids=np.array(bids, dtype=np.float64),
        base_logweights=[np.array(b, dtype=np.float64) for b in base_logweights],
        rewards=[
            np.array(m, dtype=np.float64).reshape(len(ids), len(b))
            for m, b in zip(rewards, base_logweights, strict=True)
        ],
        prompt_weights=weights,
    )


def instance_to_json(instance: Instance) -> dict[str, Any]:
    """The schema-v1 form of an instance (prompt weights are the normalised ones)."""
    return {
        "kl_weight": instance.kl_weight,
        "groups": [{"id": gid, "bid": float(b)} for gid, b in zip(instance.group_ids, instance.bids, strict=True)],
        "prompts": [
            {
                "weight": float(mu),
                "base_logweights": [float(x) for x in base],
                "rewards": {gid: [float(x) for x in rew[i]] for i, gid in enumerate(instance.group_ids)},
            }
            for mu, base, rew in zip(instance.prompt_weights, instance.base_logweights, instance.rewards, strict=True)
        ],
    }


def result_to_json(instance: Instance, outcome: Outcome) -> dict[str, Any]:
    """The schema-v1 result: exactly the keys documented above."""
    return {
        "policy": [[float(x) for x in q] for q in outcome.policy],
        "groups": {
            gid: {
                "payment": float(outcome.payment[i]),
                "value": float(outcome.value[i]),
                "utility": float(outcome.utility[i]),
                "expected_reward": float(outcome.expected_reward[i]),
            }
            for i, gid in enumerate(instance.group_ids)
        },
        "welfare": float(outcome.welfare),
        "kl_to_base": float(outcome.kl_to_base),
        "revenue": float(outcome.revenue),
    }
