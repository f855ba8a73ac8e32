"""Advertising mechanisms for LLM output (pure numpy/scipy): see ``docs/advertising.md``.

In the framework of Feizi, Hajiaghayi, Rezaei, Shin ("Online Advertisements with LLMs"), these are auction modules:

- :mod:`auctions.ads.token`: the token auction (linear and log-linear aggregation, stable-sampling payments);
- :mod:`auctions.ads.summary`: the summary auction (generalised proportional allocation, word lengths);
- :mod:`auctions.ads.segment`: the RAG segment auction (one or several ads per segment, several segments);
- :mod:`auctions.ads.mosaic`: MOSAIC per query, a one-prompt instance of :mod:`auctions.mechanism`;
- :mod:`auctions.ads.cli` and :mod:`auctions.ads.lab`: the ``python -m auctions`` subcommands and their plots.

Nothing is imported here, so that ``python -m auctions solve`` does not pay for scipy.
"""
