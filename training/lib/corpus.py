"""Deterministic synthetic corpus for the built-in ``tiny`` base model and the demo.

Product and support questions, each answered in four clearly different styles. The same fact is wrapped
differently by each style, so a model pretrained on the corpus learns a *mixture* of styles per prompt and
preference groups with different tastes disagree about the same candidates.

Text format (chat-free, used everywhere in ``training``): the prompt is ``format_prompt(question)``, i.e.
``"Question: <question>\\nAnswer: "``, and a response is plain text without leading or trailing whitespace.
The model sees ``prompt ids + response ids + eos``; prompt and response are tokenised separately so the
boundary is the same in pretraining, sampling, scoring and fine-tuning.

Pure Python: no numpy, no torch.
"""

from __future__ import annotations

import random
from collections.abc import Callable

STYLES: tuple[str, ...] = ("concise", "enthusiastic", "formal", "technical")

PRODUCTS: tuple[str, ...] = (
    "wireless headphones",
    "smart watch",
    "laptop",
    "coffee maker",
    "robot vacuum",
    "electric bike",
    "desk lamp",
    "bluetooth speaker",
    "fitness tracker",
    "air purifier",
    "gaming mouse",
    "tablet",
)

# question template -> list of fact templates ({p} product, {n} number, {d} days, {m} months)
_QUESTIONS: dict[str, tuple[str, ...]] = {
    "How do I reset my {p}?": (
        "hold the power button for {n} seconds",
        "press reset and power together for {n} seconds",
    ),
    "How long does the battery of the {p} last?": (
        "the battery lasts about {n} hours",
        "a full charge gives roughly {n} hours of use",
    ),
    "Can I return the {p}?": (
        "you can return it within {d} days",
        "returns are free for {d} days after delivery",
    ),
    "Is the {p} waterproof?": (
        "it is splash resistant but not waterproof",
        "it survives rain but should not be submerged",
    ),
    "My {p} will not turn on. What should I do?": (
        "charge it for {n} minutes and try again",
        "plug it in for {n} minutes, then hold the power button",
    ),
    "Does the {p} come with a warranty?": (
        "it has a {m} month warranty",
        "the warranty covers {m} months of normal use",
    ),
    "How do I connect the {p} to my phone?": (
        "turn on pairing mode and select it in the app",
        "open the app and follow the pairing steps",
    ),
    "When will my {p} order arrive?": (
        "orders usually arrive in {n} days",
        "standard delivery takes {n} business days",
    ),
    "How do I clean the {p}?": (
        "wipe it with a soft dry cloth",
        "use a damp cloth and avoid harsh cleaners",
    ),
    "Is the {p} worth the price?": (
        "most customers rate it {r} out of ten",
        "it is our best selling model this year",
    ),
}

QUESTIONS: tuple[str, ...] = tuple(_QUESTIONS)

_ENTHUSIASTIC_OPEN = ("Great question!", "Awesome!", "Oh, happy to help!", "Love this question!")
_ENTHUSIASTIC_CLOSE = ("You are going to love it!", "Enjoy your {p}!", "It is amazing!", "Have fun!")
_FORMAL_OPEN = ("Thank you for contacting us.", "Thank you for your inquiry.", "We appreciate your question.")
_FORMAL_CLOSE = (
    "Please let us know if we may assist further. Kind regards.",
    "Should you require further assistance, please contact us. Kind regards.",
    "We remain at your disposal. Kind regards.",
)
_TECH_OPEN = ("Technically,", "Per the spec,", "Per the firmware notes,")
_TECH_CLOSE = (
    "Firmware v{a}.{b} supports this.",
    "The {p} uses a {mah} mAh cell and firmware v{a}.{b}.",
    "See spec sheet {a}{b} for the protocol details.",
)


def format_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer: "


def _fill(template: str, rng: random.Random, product: str) -> str:
    return template.format(
        p=product,
        n=rng.choice((2, 3, 5, 8, 10, 12, 15, 20)),
        d=rng.choice((14, 30, 60)),
        m=rng.choice((12, 24, 36)),
        a=rng.randint(1, 4),
        b=rng.randint(0, 9),
        mah=rng.choice((300, 500, 1200, 4000)),
        r=rng.choice((7, 8, 9)),  # a rating out of ten (n reaches 20)
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def render_response(question_template: str, product: str, style: str, rng: random.Random) -> str:
    """One response to ``question_template`` about ``product`` in ``style`` (random variant drawn from ``rng``)."""
    fact = _fill(rng.choice(_QUESTIONS[question_template]), rng, product)
    if style == "concise":
        return f"{_cap(fact)}."
    if style == "enthusiastic":
        opener = rng.choice(_ENTHUSIASTIC_OPEN)
        closer = _fill(rng.choice(_ENTHUSIASTIC_CLOSE), rng, product)
        return f"{opener} {_cap(fact)}! {closer}"
    if style == "formal":
        opener = rng.choice(_FORMAL_OPEN)
        closer = rng.choice(_FORMAL_CLOSE)
        return f"{opener} {_cap(fact)}. {closer}"
    if style == "technical":
        opener = rng.choice(_TECH_OPEN)
        closer = _fill(rng.choice(_TECH_CLOSE), rng, product)
        return f"{opener} {fact}. {closer}"
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")


def _all_pairs() -> list[tuple[str, str]]:
    return [(q, p) for q in QUESTIONS for p in PRODUCTS]


def build_corpus(seed: int = 0, variants: int = 3) -> list[tuple[str, str, str]]:
    """``(prompt, response, style)`` triples: every question x product x style, ``variants`` random fillings each.

    Deterministic in ``seed``; every prompt gets every style equally often, so a model fitted to it samples
    a real mix of styles.
    """
    rng = random.Random(seed)
    out: list[tuple[str, str, str]] = []
    for q, p in _all_pairs():
        prompt = format_prompt(q.format(p=p))
        for style in STYLES:
            for _ in range(variants):
                out.append((prompt, render_response(q, p, style, rng), style))
    rng.shuffle(out)
    return out


def _pick_prompts(offset: int, count: int) -> list[str]:
    pairs = _all_pairs()
    # a fixed stride walks through different questions and products
    picked = [pairs[(offset + 37 * i) % len(pairs)] for i in range(count)]
    return [format_prompt(q.format(p=p)) for q, p in picked]


def demo_prompts(count: int = 8) -> list[str]:
    """The demo round's prompts (fixed)."""
    return _pick_prompts(0, count)


def heldout_prompts(count: int = 8) -> list[str]:
    """Prompts never used as round prompts, for evaluating generalisation (fixed, disjoint from ``demo_prompts``)."""
    out = _pick_prompts(500, count)
    assert not set(out) & set(demo_prompts(count))
    return out


def _question_for_prompt(prompt: str) -> tuple[str, str] | None:
    for q, p in _all_pairs():
        if format_prompt(q.format(p=p)) == prompt:
            return q, p
    return None


def preference_pairs_for_style(style: str, n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` pairs ``(prompt, chosen, rejected)``: chosen in ``style``, rejected in another style, same prompt."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    rng = random.Random(f"pairs-{style}-{seed}")
    pairs = _all_pairs()
    others = [s for s in STYLES if s != style]
    out = []
    for _ in range(n):
        q, p = rng.choice(pairs)
        chosen = render_response(q, p, style, rng)
        rejected = render_response(q, p, rng.choice(others), rng)
        out.append((format_prompt(q.format(p=p)), chosen, rejected))
    return out


_RUBRICS: dict[str, tuple[dict[str, float], int | None]] = {
    "enthusiastic": ({"!": 1.0, "love": 1.0, "great": 0.5, "awesome": 0.5, "amazing": 0.5, "enjoy": 0.5}, None),
    "formal": ({"thank you": 1.0, "kind regards": 1.0, "please": 0.5, "assist": 0.5, "inquiry": 0.5}, None),
    "technical": ({"firmware": 1.0, "mah": 1.0, "spec": 1.0, "protocol": 0.5, "technically": 0.5}, None),
    "concise": ({"!": -0.5, "thank you": -0.5, "firmware": -0.5}, 8),
}


def rubric_for_style(style: str) -> tuple[dict[str, float], int | None]:
    """``(phrases -> weight, target_length_in_words or None)`` for a rubric group that likes ``style``."""
    if style not in _RUBRICS:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    phrases, target = _RUBRICS[style]
    return dict(phrases), target


_MARKERS: dict[str, Callable[[str], bool]] = {
    "enthusiastic": lambda t: "!" in t,
    "formal": lambda t: "kind regards" in t or "thank you" in t or "we appreciate" in t,
    "technical": lambda t: "firmware" in t or "spec" in t or "technically" in t or "mah" in t,
}


def classify_style(response: str) -> str | None:
    """Best-effort style label of a (possibly model-written) response; ``None`` if it fits none."""
    t = response.lower()
    hits = [s for s, f in _MARKERS.items() if f(t)]
    if len(hits) == 1:
        return hits[0]
    if not hits and 0 < len(t.split()) <= 14 and t.endswith("."):
        return "concise"
    return None


def direct_scores_for_style(style: str, responses: list[str]) -> list[float]:
    """Demo 'direct scores' a human who likes ``style`` would give: 1 in style, 0.3 unclassifiable, 0 otherwise."""
    out = []
    for r in responses:
        s = classify_style(r)
        out.append(1.0 if s == style else (0.3 if s is None else 0.0))
    return out
