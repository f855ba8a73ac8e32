"""What every command line of the pure libraries (``python -m auctions``, ``python -m economics``) shares: usage
errors and invalid input as one line on standard error with exit status 2, and reading a JSON file or standard input
into the library's own error type, so no traceback ever reaches the user."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

EXIT_INVALID = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line too (argparse prints the usage block by default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message}\n")


def fail(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_INVALID


def read_json(path: str, *, error: type[Exception]) -> Any:
    """The JSON in ``path`` (``-``: standard input); an unreadable file, non-UTF-8 text or invalid JSON raises
    ``error`` with a message that names the file and the place."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise error(f"{path}: invalid JSON (nested too deeply)") from None
