"""A text's embedding depends on the text only: not on what else is embedded with it, nor in which order."""

from __future__ import annotations

import numpy as np
import pytest

from training.lib import rewards

pytestmark = pytest.mark.slow

TEXTS = ["Short answer.", "A much longer answer that pads every other text in a batch with many more tokens.", "Ok!"]


def test_embeddings_are_bit_identical_whatever_the_batch_and_the_order():
    rewards._EMBED_CACHE.clear()
    alone = [rewards.embed_texts([t])[0] for t in TEXTS]
    rewards._EMBED_CACHE.clear()
    together = rewards.embed_texts(list(reversed(TEXTS)) + ["Something else entirely, to change the batch."])
    for i, t in enumerate(reversed(TEXTS)):
        assert np.array_equal(together[i], alone[TEXTS.index(t)])
