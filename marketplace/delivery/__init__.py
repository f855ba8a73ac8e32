"""Delivery: the fine-tuned model a delivered round publishes, who may use it, its downloads, the engine client and
usage metering. Sits beside billing and training; only orchestration and the interfaces import it."""
