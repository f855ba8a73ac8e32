"""The OpenAI-compatible API at /v1/ (an interface: parse, check, call marketplace.delivery.inference, render).

Chat messages map to the project's prompt format (``training.lib.corpus.format_prompt``): the last user message is the
question; system messages and earlier turns are ignored, because the models trained here know only the one-question
format ``Question: ...\\nAnswer: ``.
"""
