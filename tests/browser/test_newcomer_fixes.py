"""What a newcomer met on the site, fixed: phone-width pages that do not scroll sideways, a card form that says what
to type and what went wrong, styled error pages, and a warning to staff when no worker is alive. Every page here runs
under the site's Content-Security-Policy, and none may report a violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from marketplace.core import workers
from tests.browser import pages
from tests.factories import make_group, make_round, make_user
from training.models import Candidate

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LONG_PROMPT = (
    "My laptop will not turn on after the latest update and the support page keeps sending me to a URL like "
    "https://support.example.com/articles/troubleshooting/power/restart-after-firmware-update-0123456789 — what now?"
)


def csp_violations(browser_errors) -> list[str]:
    return [line for line in browser_errors.lines if "Content Security Policy" in line or "Refused to" in line]


def phone_page(chromium, live_server, browser_errors):
    context = chromium.new_context(base_url=live_server.url, viewport=PHONE, device_scale_factor=2)
    context.set_default_timeout(20_000)
    page = context.new_page()
    browser_errors.watch(page)
    return context, page


def assert_no_sideways_scroll(page, what: str) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[1] == PHONE["width"]
    if widths[0] > widths[1]:
        # Name the innermost elements that stick out, so a failure says what to fix.
        culprits = page.evaluate(
            """(() => [...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                 .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > window.innerWidth + 1))
                 .slice(0, 6)
                 .map(e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ').join('.') : '')
                           + ' ' + Math.round(e.getBoundingClientRect().right) + 'px'))()"""
        )
        raise AssertionError(f"{what} is {widths[0]} px wide on a {widths[1]} px screen: {culprits}")


def test_the_round_and_group_pages_fit_a_phone_screen(site, chromium, live_server, browser_errors, screenshot):
    admin = make_user("pat@example.com")
    group = make_group(admin=admin, name="Plain Speakers of the Northern Support Desk")
    group.description = "We want short, plain answers. " * 6
    group.save()
    round = make_round(title="Support answers for the autumn release, round one", prompts=[LONG_PROMPT, "How do I reset my password?"])
    for p in range(2):
        for i in range(3):
            Candidate.objects.create(round=round, prompt_index=p, index=i, text=f"Answer {i}: " + "plain " * 30,
                                     num_tokens=30, base_logprob=-3.0)
    from training.models import Checkpoint, TrainingJob

    job = TrainingJob.objects.create(round=round, status=TrainingJob.Status.RUNNING, steps_done=40, total_steps=60,
                                     hyperparameters={"objective": "sum_x mu(x) " * 12, "model_type": None,
                                                      "target_modules": ["c_attn", "c_proj", "c_fc"]})
    for step, loss in ((20, 1.1), (40, 0.9)):
        Checkpoint.objects.create(job=job, step=step, path=f"c{step}", metrics={"loss": loss, "tv_to_target": loss / 3})
    context, page = phone_page(chromium, live_server, browser_errors)
    try:
        pages.log_in(page, admin.email)
        link = pages.create_invitation_link(page, group.slug)
        assert link.startswith(live_server.url)
        assert_no_sideways_scroll(page, "the members page with an invitation link")
        screenshot(page, "phone-members")
        failures = []
        for path, name in [
            (f"/rounds/{round.slug}/", "phone-round"),
            (f"/groups/{group.slug}/", "phone-group"),
            (f"/groups/{group.slug}/rounds/", "phone-group-rounds"),
            (f"/rounds/{round.slug}/groups/{group.slug}/preferences/", "phone-preferences"),
            (f"/rounds/{round.slug}/groups/{group.slug}/bid/", "phone-bid"),
            (f"/rounds/{round.slug}/job/", "phone-job"),
            ("/rounds/", "phone-rounds"),
        ]:
            page.goto(path)
            screenshot(page, name)
            try:
                assert_no_sideways_scroll(page, path)
            except AssertionError as exc:
                failures.append(str(exc))
        assert failures == []
        # The group's tabs stay reachable: every tab is inside the screen or inside the tab strip's own scroll.
        page.goto(f"/groups/{group.slug}/members/")
        tabs_fit = page.evaluate(
            "(() => { const t = document.querySelector('.tabs'); return t.scrollWidth <= t.clientWidth; })()"
        )
        assert tabs_fit, "the group's tabs are cut off on a phone"
        assert csp_violations(browser_errors) == []
    finally:
        context.close()


def test_an_empty_card_submit_says_what_to_fill_in_and_the_card_page_survives_a_reload(
    site, stripe_stand_in, new_page, browser_errors, screenshot
):
    admin = make_user("quinn@example.com")
    group = make_group(admin=admin, name="Careful Payers")
    page = new_page()
    pages.log_in(page, admin.email)
    page.goto(f"/groups/{group.slug}/billing/")
    page.locator("main").get_by_role("button", name="Add a card").click()
    expect(page.get_by_test_id("test-card-hint")).to_contain_text("4242 4242 4242 4242")
    expect(page.get_by_label("Card number")).to_be_visible()
    expect(page.get_by_label("Expiry month")).to_be_visible()

    page.get_by_label("Name on the card").fill("Quinn Admin")  # the name is a required field the browser checks itself
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("#card-errors")).to_contain_text("Enter the card's number")
    assert "Cannot read properties" not in page.locator("#card-errors").inner_text()
    screenshot(page, "card-empty-submit")

    page.reload()  # the card page is a POST's answer; a reload (or the address bar) must still show the form
    expect(page.get_by_role("heading", name="Add a card")).to_be_visible()
    expect(page.get_by_label("Card number")).to_be_visible()

    pages.add_card(page, group.slug, pages.CARD_OK, name="Quinn Admin")
    expect(page.locator(".messages")).to_contain_text("Card saved")
    assert csp_violations(browser_errors) == []


def test_error_pages_are_the_sites_own_with_a_way_back(site, new_page, browser_errors, screenshot):
    user = make_user("rae@example.com")
    page = new_page()
    pages.log_in(page, user.email)
    response = page.goto("/no/such/page/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    screenshot(page, "error-404")
    response = page.goto("/accounts/logout/")
    assert response.status == 405
    expect(page.get_by_role("heading", name="This page cannot be opened that way")).to_be_visible()
    screenshot(page, "error-405")
    page.get_by_role("link", name="Back to the home page").click()
    expect(page.locator(".nav-user")).to_have_text(user.email)
    assert csp_violations(browser_errors) == []


def test_staff_see_that_no_worker_is_alive_until_one_is(site, new_page, browser_errors, screenshot):
    from tests.support.workers import broker_switched, private_broker, redis_available

    if not redis_available():
        pytest.skip("Redis is not reachable")
    staff = make_user("ops@example.com", staff=True)
    round = make_round(title="Waiting round")
    with broker_switched(private_broker(13)):
        workers.workers_cache_clear()
        page = new_page()
        pages.log_in(page, staff.email)
        page.goto(f"/staff/rounds/{round.slug}/")
        expect(page.get_by_test_id("worker-warning")).to_contain_text("No Celery worker is running")
        screenshot(page, "staff-no-worker")
        # Closing is a step of its own: the first click only opens the question and its real button.
        step = page.get_by_test_id("close-step")
        confirm = page.get_by_role("button", name="Yes, close bidding now")
        expect(confirm).to_be_hidden()
        step.locator("summary").click()
        expect(step).to_contain_text("This cannot be undone")
        expect(confirm).to_be_visible()
        step.locator("summary").click()  # changed their mind
        expect(confirm).to_be_hidden()
        round.refresh_from_db()
        assert round.status == "open"
        page.goto(f"/rounds/{round.slug}/")
        expect(page.get_by_test_id("worker-warning")).to_be_visible()

        workers.heartbeat_write(hostname="celery@test", queues=["default", "training"])
        workers.workers_cache_clear()
        page.reload()
        expect(page.get_by_test_id("worker-warning")).to_have_count(0)
    workers.workers_cache_clear()
    assert csp_violations(browser_errors) == []


def test_the_job_page_follows_the_job_without_a_reload(site, new_page, browser_errors, screenshot):
    """Every live number on the job page comes from the one progress poll: the progress card, the job card and the
    checkpoint table move together, and "Payments are being settled" clears once they are."""
    from django.utils import timezone

    from marketplace.models import Round
    from training.models import Checkpoint, JobEvent, TrainingJob

    viewer = make_user("sam@example.com")
    round = make_round(status=Round.Status.TRAINING, title="Live round")
    job = TrainingJob.objects.create(round=round, status=TrainingJob.Status.RUNNING, steps_done=18, total_steps=60,
                                     loss=1.2, heartbeat_at=timezone.now(), started_at=timezone.now(), eta_seconds=7)
    page = new_page()
    pages.log_in(page, viewer.email)
    page.goto(f"/rounds/{round.slug}/job/")
    expect(page.locator('[data-live="job_steps"]')).to_have_text("18 / 60")
    expect(page.locator('[data-live="no_checkpoints"]')).to_be_visible()

    # Before any checkpoint the headline loss is one step's, and says so.
    expect(page.locator('[data-live="job_loss"]')).to_have_text("1.2000 (latest step; no checkpoint yet)")
    expect(page.get_by_test_id("chart-loss")).to_have_count(0)

    TrainingJob.objects.filter(pk=job.pk).update(steps_done=40, loss=1.2081, eta_seconds=3)
    Checkpoint.objects.create(job=job, step=20, path="x20", metrics={"loss": 1.02, "tv_to_target": 0.4})
    Checkpoint.objects.create(job=job, step=40, path="x", metrics={"loss": 0.8314, "tv_to_target": 0.2}, is_best=True)
    JobEvent.objects.create(job=job, type=JobEvent.Type.CHECKPOINT, message="Checkpoint at step 40")
    expect(page.locator('[data-live="job_steps"]')).to_have_text("40 / 60")
    expect(page.locator("[data-round-progress] [data-field=job_steps_done]")).to_have_text("40")
    # The headline is the latest checkpoint's loss, the same number as the table's, not the noisy step's 1.2081.
    expect(page.locator('[data-live="job_loss"]')).to_have_text("0.8314")
    expect(page.locator("[data-round-progress] [data-field=job_loss]")).to_have_text("0.8314")
    expect(page.locator('[data-live="checkpoint_rows"]')).to_contain_text("loss 0.8314")
    expect(page.locator('[data-live="no_checkpoints"]')).to_be_hidden()
    # The charts and the full event list follow the same poll.
    expect(page.get_by_test_id("chart-loss").locator("svg polyline").first).to_be_attached()
    expect(page.get_by_test_id("chart-fidelity").locator("svg")).to_be_visible()
    expect(page.get_by_test_id("job-events")).to_contain_text("Checkpoint at step 40")
    screenshot(page, "job-live")

    # Delivered with payments still settling: the note shows, and clears by itself once they are settled.
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingJob.Status.SUCCEEDED, steps_done=60, finished_at=timezone.now())
    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED, billing_pending=True)
    expect(page.locator("[data-round-progress] [data-field=billing_pending]")).to_be_visible()
    expect(page.locator('[data-live="job_eta"]')).to_have_text("—")
    Round.objects.filter(pk=round.pk).update(billing_pending=False)
    expect(page.locator("[data-round-progress] [data-field=billing_pending]")).to_be_hidden()
    assert csp_violations(browser_errors) == []
