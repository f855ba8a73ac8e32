"""`manage.py check --deploy` with the production settings of .env.example passes with no warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env_example() -> dict[str, str]:
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env


def _check(extra: dict[str, str]) -> subprocess.CompletedProcess:
    # The browser tests set DJANGO_ALLOW_ASYNC_UNSAFE for Playwright in this process; a deployment never has it.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(extra)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_deploy_check_passes_with_production_settings(tmp_path):
    prod = _env_example()
    prod.update(SECRET_KEY="x7" * 30 + "q9Zr", VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    result = _check(prod)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_flags_the_demo_defaults(tmp_path):
    result = _check({"VAR_DIR": str(tmp_path), "DEBUG": "false"})
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_real_stripe_keys_without_a_webhook_secret_are_refused_at_start(tmp_path):
    result = _check({"VAR_DIR": str(tmp_path), "STRIPE_SECRET_KEY": "sk_test_real_account_key"})
    assert result.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET" in result.stderr
