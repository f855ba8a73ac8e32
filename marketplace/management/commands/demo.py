"""`make demo`: one full round on embedded defaults (SQLite, filesystem broker, a real worker process, localstripe)."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run one whole round end to end on the embedded defaults and print what every group got and paid."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--prompts", type=int, default=8, help="Number of demo prompts in the round.")
        parser.add_argument("--candidates", type=int, default=8, help="Candidates sampled per prompt.")
        parser.add_argument("--kl-weight", type=float, default=4.0, help="lambda, dollars per nat.")
        parser.add_argument("--steps", type=int, default=None, help="LoRA steps (default: the platform's).")
        parser.add_argument("--timeout", type=float, default=540.0, help="Give up after this many seconds.")

    def handle(self, *args, **opts) -> None:
        from marketplace.devtools.demo_run import DemoRunner

        started = time.monotonic()
        out_dir = Path(settings.VAR_DIR) / "demo"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.stdout.write("Migrating the database ...")
        call_command("migrate", verbosity=0, interactive=False)
        runner = DemoRunner(out_dir=out_dir, write=self.stdout.write, opts=opts)
        try:
            summary = runner.run()
        except CommandError:
            raise
        except Exception as exc:
            raise CommandError(f"The demo failed: {type(exc).__name__}: {exc}") from exc
        finally:
            runner.stop()
        self.stdout.write(self.style.SUCCESS(f"Demo finished in {time.monotonic() - started:.0f} s. Files in {out_dir}/"))
        self.stdout.write(f"The numbers above are in {out_dir / 'summary.json'} (welfare {summary['welfare']:.4f}, KL to base {summary['kl_to_base']:.4f} nats).")

