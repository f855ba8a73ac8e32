"""The training math: a pure library with no Django and nothing from ``marketplace`` or the ``training`` app.

Plain data and numpy arrays in, frozen dataclasses out, so it is tested with plain pytest and checked by mypy.
numpy (and scipy, tokenizers) are imported at module level; torch, transformers, peft, trl, datasets and
sentence-transformers only inside the functions that need them, so importing any module here (as Django start-up
does through the app's services) never loads torch.

Modules, from the bottom up (no cycles: each imports only modules above it in this list):

- ``corpus``: the synthetic corpus, demo and held-out prompts, demo preferences (pure Python)
- ``metrics``: distributions over the candidates (implied weights, tilt, TV, expectations), numpy only
- ``config``: ``TrainConfig``, resolved hyperparameters, ``TrainingError``
- ``inputs``: a training job's validated inputs (q* rows, prompt weights mu, base log-weights)
- ``basemodels``: base models by name; builds and caches the ``tiny`` GPT-2
- ``sampling``: batched candidate sampling, sequence log-probabilities, base log-weights
- ``rewards``: Bradley-Terry, rubric and direct-score reward models; the affine normaliser
- ``adapters``: the LoRA config, loading an adapter onto its base, switching it off
- ``jobdir``: the job-folder protocol (fingerprint, checkpoints, best checkpoint, ``result.json``)
- ``schedule``: the weighted_sft batch schedule, for the benchmark
- ``evaluation``: what an adapter delivered (fidelity, delivered vs promised reward, KL)
- ``loop``: the set-up both training loops share (threads, base model, candidate metrics, progress)
- ``sft``, ``grpo``: the two training loops
- ``trainer``: ``train``, the entry point that validates, claims the job folder and dispatches to a loop
- ``demo``: a complete demo round without Django
"""
