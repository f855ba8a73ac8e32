"""``python -m auctions``: see auctions.cli."""

from __future__ import annotations

from auctions.cli import main

raise SystemExit(main())
