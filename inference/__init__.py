"""The inference engine: its own process serving one base model and its LoRA adapters over vLLM's OpenAI-compatible
protocol, with a dynamic batcher that puts requests for different adapters into one forward pass.

``python -m inference serve --base tiny --port 8100``; docs/serving.md describes the protocol and the design.
Imports no Django and nothing of the site (``.importlinter``); torch, transformers and peft load in the engine.
"""
