from __future__ import annotations

import pkgutil
import subprocess
import sys

import training.lib


def test_importing_the_library_loads_neither_django_nor_torch():
    """Django imports the library at start-up; torch and friends must wait until a function needs them."""
    modules = [f"training.lib.{m.name}" for m in pkgutil.iter_modules(training.lib.__path__)]
    assert "training.lib.trainer" in modules and "training.lib.evaluation" in modules
    heavy = ("torch", "transformers", "peft", "trl", "datasets", "sentence_transformers", "django")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
