"""``python -m economics``: see economics.cli."""

from __future__ import annotations

from economics.cli import main

raise SystemExit(main())
