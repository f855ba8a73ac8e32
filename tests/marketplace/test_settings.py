"""Settings come from the environment strictly: nonsense fails loudly instead of meaning something else."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.env import ConfigError, env_bool, env_int, env_list, parse_database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), (" YES ", True), ("On", True),
                                           ("0", False), ("false", False), ("no", False), ("off", False), ("", False)])
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["ture", "2", "yes please", "enabled", "-1"])
def test_env_bool_rejects_nonsense(monkeypatch, raw):
    monkeypatch.setenv("SOME_FLAG", raw)
    with pytest.raises(ConfigError, match="SOME_FLAG"):
        env_bool("SOME_FLAG", False)


def test_env_bool_uses_the_default_only_when_unset(monkeypatch):
    monkeypatch.delenv("SOME_FLAG", raising=False)
    assert env_bool("SOME_FLAG", True) is True


def test_env_int_rejects_non_integers_and_values_below_the_minimum(monkeypatch):
    monkeypatch.setenv("N", "12")
    assert env_int("N", 1, minimum=1) == 12
    monkeypatch.setenv("N", "1.5")
    with pytest.raises(ConfigError):
        env_int("N", 1)
    monkeypatch.setenv("N", "0")
    with pytest.raises(ConfigError, match="at least 1"):
        env_int("N", 1, minimum=1)


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example , b.example,, ")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_parse_database_url_reads_a_full_postgres_url():
    db = parse_database_url("postgres://app:p%40ss@db.internal:6543/market%20place")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == ("market place", "app", "p@ss", "db.internal", "6543")


def test_parse_database_url_reads_postgres_without_password_or_port():
    db = parse_database_url("postgresql://postgres@127.0.0.1/site")
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == ("site", "postgres", "", "127.0.0.1", "")


def test_parse_database_url_reads_sqlite_paths():
    assert parse_database_url("sqlite:////var/db/x.sqlite3")["NAME"] == "/var/db/x.sqlite3"
    assert parse_database_url("sqlite:///relative.sqlite3")["NAME"] == "relative.sqlite3"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgres://u@h/", "sqlite://", "nonsense", ""])
def test_parse_database_url_rejects_what_it_cannot_use(url):
    with pytest.raises(ConfigError):
        parse_database_url(url)


def _load_settings(**env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    code = "import marketplace.settings as s; print(s.DEBUG, s.DATABASES['default']['ENGINE'])"
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=60)


def test_the_settings_module_refuses_to_start_with_a_nonsense_boolean(tmp_path):
    result = _load_settings(DEBUG="ture", VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DEBUG='ture' is not a boolean" in result.stderr


def test_the_settings_module_refuses_an_unusable_database_url(tmp_path):
    result = _load_settings(DATABASE_URL="mysql://x@y/z", VAR_DIR=str(tmp_path))
    assert result.returncode != 0 and "unsupported scheme" in result.stderr


def test_the_settings_module_starts_with_sane_values(tmp_path):
    result = _load_settings(DEBUG="yes", DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "django.db.backends.postgresql"]


def _variables_read_by_settings() -> set[str]:
    tree = ast.parse((ROOT / "marketplace" / "settings.py").read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "").startswith("env_")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_every_variable_the_settings_read_is_in_env_example():
    documented = {
        line.split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert sorted(_variables_read_by_settings() - documented) == []


def test_nothing_outside_settings_reads_the_environment():
    offenders = []
    for path in [*ROOT.glob("marketplace/**/*.py"), *ROOT.glob("training/**/*.py"), *ROOT.glob("auctions/**/*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel in ("marketplace/settings.py", "marketplace/env.py", "marketplace/localstripe_server.py") or (
            "/devtools/" in rel or "management/commands" in rel
        ):
            continue  # the settings themselves; launchers that pass an environment on to the processes they start
        text = path.read_text(encoding="utf-8")
        if re.search(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[", text):
            offenders.append(rel)
    assert offenders == []


def test_importing_the_settings_creates_no_folder(tmp_path):
    var = tmp_path / "var-not-made"
    env = {**os.environ, "VAR_DIR": str(var)}
    subprocess.run([sys.executable, "-c", "import marketplace.settings"], cwd=ROOT, env=env, check=True)
    assert not var.exists()
