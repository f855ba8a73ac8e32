"""Training services: candidates, reward models, LoRA jobs and their evaluation, over the pure library in training/."""

from training.services.candidates import candidates_sample
from training.services.evaluation import job_evaluate
from training.services.jobs import job_cancel, job_claim, job_create, job_run, jobs_reap
from training.services.rewards import reward_models_fit

__all__ = [
    "candidates_sample",
    "job_cancel",
    "job_claim",
    "job_create",
    "job_evaluate",
    "job_run",
    "jobs_reap",
    "reward_models_fit",
]
