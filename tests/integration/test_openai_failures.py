"""/v1/ when things go wrong mid-request, on the real stack: the site under uvicorn (ASGI, so streams really stream;
Django's test server would buffer them) and a real engine process.

- A client that disconnects mid-stream: the engine cancels its rows, nothing is metered, and others are still served.
- The engine restarting mid-request: a non-streamed request gets a 503 in OpenAI's error shape saying the engine is
  down, a streamed one ends on an error event in that shape; nothing is metered; after the restart the site serves
  again (it registers the adapter with the new engine).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import httpx2
import openai
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from marketplace.accounts.tokens import api_token_create
from marketplace.delivery.models import UsageDaily
from marketplace.delivery.services import model_publish
from tests.integration.test_openai_sdk import PROMPT, adapter_dir, free_port  # noqa: F401 - adapter_dir is a fixture
from tests.marketplace.openai_api.conftest import publish_for
from training.models import TrainingJob

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Near-uniform sampling on the tiny model: answers rarely end before max_tokens, so a request stays in flight.
LONG = {"max_tokens": 100, "temperature": 2.0}  # the tiny model's context is 128 tokens


class Process:
    """A child process whose output is collected, started and waited for readiness by a line or an HTTP probe."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args, self.env = args, env
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []

    def start(self, ready: str, timeout: float = 300) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"})
        out = self.proc.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in out], daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail(f"{self.args[:3]} did not get ready in {timeout:.0f} s:\n" + "".join(self.seen[-40:]))
            self.seen.append(line)
            if ready in line:
                return

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return "".join(self.seen[-40:])

    def kill(self) -> None:
        """A crash, not a shutdown: SIGKILL, no chance to finish the request in flight."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def engine_process():
    port = free_port()
    engine = Process([sys.executable, "-m", "inference", "serve", "--base", "tiny", "--port", str(port),
                      "--model-cache", str(django_settings.MODEL_CACHE_DIR)], {})
    engine.start("inference: ready on")
    engine.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield engine
    engine.stop()


@pytest.fixture
def site(engine_process, cast, adapter_dir, tmp_path, settings):  # noqa: F811 - adapter_dir is the imported fixture
    """The published model, a token of bob's, and the site under uvicorn on the test database, talking to the engine."""
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    model = publish_for(groups=[cast.group], adapter_dir=str(adapter_dir), slug="failing-round")
    TrainingJob.objects.create(round=model.round, status=TrainingJob.Status.SUCCEEDED, adapter_dir=str(adapter_dir),
                               finished_at=timezone.now())
    model = model_publish(round=model.round)
    db = connection.settings_dict
    port = free_port()
    web = Process(
        [sys.executable, "-m", "uvicorn", "marketplace.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        {
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "INFERENCE_URL": engine_process.url,
            "ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        },
    )
    web.start("Uvicorn running on", timeout=120)
    yield {"url": f"http://127.0.0.1:{port}", "model": model, "token": api_token_create(user=cast.bob, name="sdk")[1],
           "group": cast.group, "engine": engine_process, "web": web}
    web.stop()


def _health(engine_url: str) -> dict:
    return httpx2.get(f"{engine_url}/health", timeout=10).json()


def _usage(group, model) -> tuple[int, int, int]:
    row = UsageDaily.objects.filter(group=group, model=model).first()
    return (row.prompt_tokens, row.completion_tokens, row.requests) if row else (0, 0, 0)


def _wait_for(what: str, predicate, timeout: float = 60, explain=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what} {explain()}")


def test_a_client_that_disconnects_mid_stream_is_not_metered_and_others_are_still_served(site):
    engine_url = site["engine"].url
    before = _health(engine_url)["cancelled"]
    headers = {"Authorization": f"Bearer {site['token']}"}
    body = {"model": site["model"].model_id, "prompt": PROMPT, "stream": True, "seed": 1, "n": 8, **LONG}
    with httpx2.Client(timeout=60) as http, http.stream("POST", f"{site['url']}/v1/completions", json=body,
                                                         headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # one chunk, then go away mid-stream
    _wait_for("the engine to cancel the abandoned rows", lambda: _health(engine_url)["cancelled"] > before,
              explain=lambda: f"{_health(engine_url)} {_usage(site['group'], site['model'])} {site['web'].output()} {site['engine'].output()}")
    assert _usage(site["group"], site["model"]) == (0, 0, 0)

    client = openai.OpenAI(base_url=f"{site['url']}/v1", api_key=site["token"], max_retries=0, timeout=120)
    done = client.completions.create(model=site["model"].model_id, prompt=PROMPT, max_tokens=8)
    assert done.choices[0].text is not None and done.usage.completion_tokens > 0
    assert _usage(site["group"], site["model"]) == (done.usage.prompt_tokens, done.usage.completion_tokens, 1)


def test_the_engine_restarting_mid_request_is_a_clear_503_and_nothing_is_metered(site):
    engine, engine_url = site["engine"], site["engine"].url
    client = openai.OpenAI(base_url=f"{site['url']}/v1", api_key=site["token"], max_retries=0, timeout=120)
    mid = site["model"].model_id
    outcome: dict = {}

    def call() -> None:
        try:
            # exact delivery at K = 64 for 4 choices: 256 rows of up to 100 tokens, seconds of decoding in waves of 32
            client.completions.create(model=mid + ":exact", prompt=PROMPT, n=4, extra_body={"exact_delivery": {"k": 64}},
                                      **LONG)
            outcome["error"] = None
        except openai.APIStatusError as exc:
            outcome["error"] = exc

    steps = _health(engine_url)["decode_steps"]
    caller = threading.Thread(target=call)
    caller.start()
    _wait_for("the request to be decoding", lambda: _health(engine_url)["decode_steps"] > steps)
    engine.kill()
    caller.join(timeout=60)
    err = outcome["error"]
    assert err is not None and err.status_code == 503
    assert err.body["code"] == "engine_unavailable" and "inference engine is not reachable" in err.body["message"]

    # A stream cut by the crash ends on an error event in OpenAI's shape, without [DONE]. The heavy request again
    # keeps the engine's batches full, so the stream is far from its end when the engine dies.
    engine.start("inference: ready on")
    steps = _health(engine_url)["decode_steps"]
    caller = threading.Thread(target=call)
    caller.start()
    _wait_for("the heavy request to be decoding", lambda: _health(engine_url)["decode_steps"] > steps)
    headers = {"Authorization": f"Bearer {site['token']}"}
    body = {"model": mid, "prompt": PROMPT, "stream": True, "seed": 2, "n": 8, **LONG}
    events: list[str] = []
    with httpx2.Client(timeout=120) as http, http.stream("POST", f"{site['url']}/v1/completions", json=body,
                                                         headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line)
            if len(events) == 1:
                engine.kill()
    caller.join(timeout=60)
    assert '"engine_unavailable"' in events[-1] and '"error"' in events[-1]
    assert "data: [DONE]" not in events
    assert _usage(site["group"], site["model"]) == (0, 0, 0)

    # After the restart the site registers the adapter with the new engine and serves again.
    engine.start("inference: ready on")
    done = client.completions.create(model=mid, prompt=PROMPT, max_tokens=8)
    assert done.usage.completion_tokens > 0
    assert _usage(site["group"], site["model"]) == (done.usage.prompt_tokens, done.usage.completion_tokens, 1)
