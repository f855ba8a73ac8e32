"""Every task the code enqueues is a named constant, and every constant is a task Celery has registered."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from marketplace.celery import app
from marketplace.core import tasknames
from marketplace.core.enqueue import enqueue_after_commit

ROOT = Path(__file__).resolve().parents[3]
ENQUEUERS = {"enqueue_after_commit", "send_task"}


def test_every_task_name_is_registered_with_celery():
    app.loader.import_default_modules()
    missing = sorted(name for name in tasknames.ALL if name not in app.tasks)
    assert missing == []


def test_the_routes_and_the_schedule_name_registered_tasks():
    app.loader.import_default_modules()
    app.finalize()
    routed = set(app.conf.task_routes or {})
    scheduled = {entry["task"] for entry in (app.conf.beat_schedule or {}).values()}
    assert routed | scheduled <= tasknames.ALL


def _enqueue_calls():
    for path in [*ROOT.glob("marketplace/**/*.py"), *ROOT.glob("training/**/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in ENQUEUERS and node.args:
                    yield path.relative_to(ROOT), node.lineno, node.args[0]


def test_no_code_enqueues_a_task_by_a_string_literal():
    literals = [f"{path}:{line}" for path, line, arg in _enqueue_calls() if isinstance(arg, ast.Constant)]
    assert literals == []


def test_enqueueing_an_unknown_name_fails_at_once():
    with pytest.raises(ValueError, match="unknown task name"):
        enqueue_after_commit("marketplace.tasks.no_such_task", 1)
