/* Keeps every round progress card ([data-round-progress]) current by polling its data-progress-url every 2 s.
   Updates the card, and the job page's [data-live] fields, in place with textContent only (never innerHTML), and
   stops once the round is delivered, failed or cancelled and its payments are settled, or when it disappears (404). */
(function () {
  "use strict";
  if (window.roundProgressStarted) return; // the include may appear, and load this file, more than once
  window.roundProgressStarted = true;

  var INTERVAL_MS = 2000;
  var FINAL = { delivered: true, failed: true, cancelled: true };

  function field(card, name) {
    return card.querySelector('[data-field="' + name + '"]');
  }

  function setText(card, name, text) {
    var el = field(card, name);
    if (el && el.textContent !== String(text)) el.textContent = String(text);
  }

  function show(el, visible) {
    if (el) el.hidden = !visible;
  }

  function badge(status, label) {
    var span = document.createElement("span");
    span.className = "badge badge-" + status;
    span.textContent = label;
    return span;
  }

  function replaceBadge(el, status, label) {
    if (!el) return;
    var current = el.firstElementChild;
    if (current && current.className === "badge badge-" + status && current.textContent === label) return;
    el.replaceChildren(badge(status, label));
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    var total = Math.max(0, Math.round(seconds));
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + s + " s";
    return s + " s";
  }

  function clock(iso) {
    return iso ? iso.slice(11, 19) : "";
  }

  function renderSteps(card, steps) {
    var list = field(card, "steps");
    if (!list || !steps) return;
    steps.forEach(function (step) {
      var li = list.querySelector('[data-step="' + step.status + '"]');
      if (!li || li.getAttribute("data-state") === step.state) return;
      li.setAttribute("data-state", step.state);
      li.className = "badge" + (step.state === "done" ? " badge-delivered" : step.state === "current" ? " badge-" + step.status : "");
      li.textContent = (step.state === "done" ? "✓ " : "") + step.label;
      if (step.state === "current") li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
    });
  }

  function renderJob(card, job) {
    show(field(card, "job"), !!job);
    show(field(card, "no_job"), !job);
    if (!job) return;
    // The job page's "no job yet" box is outside the card; once a job exists it no longer applies.
    var stale = document.querySelectorAll("[data-hide-when-job]");
    for (var i = 0; i < stale.length; i++) stale[i].hidden = true;
    replaceBadge(field(card, "job_status"), job.status, job.status_display);
    setText(card, "job_steps_done", job.steps_done);
    setText(card, "job_total_steps", job.total_steps);
    var percent = Math.round(Math.min(1, Math.max(0, job.progress || 0)) * 100);
    var bar = field(card, "job_bar");
    if (bar) {
      bar.setAttribute("aria-valuenow", String(percent));
      if (bar.firstElementChild) bar.firstElementChild.style.width = percent + "%";
    }
    setText(card, "job_tokens_seen", job.tokens_seen);
    var loss = headlineLoss(job);
    setText(card, "job_loss", loss);
    setText(card, "job_eta", duration(job.eta_seconds));
    setText(card, "job_heartbeat", job.heartbeat_at ? clock(job.heartbeat_at) + " UTC" : "—");
    // The job page's own cards show the same numbers; they follow the same poll (data-live, anywhere on the page).
    live("job_status", function (el) { replaceBadge(el, job.status, job.status_display); });
    liveText("job_steps", job.steps_done + " / " + job.total_steps);
    liveText("job_tokens_seen", job.tokens_seen);
    liveText("job_loss", loss);
    liveText("job_eta", job.status === "running" ? duration(job.eta_seconds) : "—");
    liveText("job_attempt", job.attempt);
    liveText("job_started_at", stamp(job.started_at));
    liveText("job_finished_at", stamp(job.finished_at));
    liveText("job_heartbeat", stamp(job.heartbeat_at));
    renderCheckpoints(job.checkpoints);
    var error = field(card, "job_error");
    if (error) {
      error.textContent = job.error_message || "";
      show(error, !!job.error_message);
    }
  }

  // The headline loss is the latest checkpoint's (the same number as the checkpoint table and the loss chart); one
  // step's loss is shown only until the first checkpoint, and says so.
  function headlineLoss(job) {
    var checkpoints = job.checkpoints || [];
    for (var i = checkpoints.length - 1; i >= 0; i--) {
      var value = (checkpoints[i].metrics || {}).loss;
      if (typeof value === "number") return value.toFixed(4);
    }
    if (job.loss === null || job.loss === undefined) return "—";
    return Number(job.loss).toFixed(4) + " (latest step; no checkpoint yet)";
  }

  // The job page's charts and full event list are server-rendered (no chart script under the CSP): when the poll
  // shows a new checkpoint, event or status, fetch the fragment once and swap it in.
  var lowerSignature = ""; // unknown: the first poll fetches once, in case anything changed since the page was rendered
  var lowerBusy = false;
  function refreshLower(data) {
    var part = document.querySelector('[data-live-part="job-lower"]');
    if (!part || !data.job) return;
    var events = data.events || [];
    var last = events.length ? events[events.length - 1] : null;
    var signature = JSON.stringify([data.job.status, data.job.checkpoints, last && last.created_at, last && last.message]);
    if (signature === lowerSignature || lowerBusy) return;
    lowerBusy = true;
    fetch(part.getAttribute("data-live-url"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        lowerBusy = false;
        if (html === null) return; // try again at the next poll
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector('[data-live-part="job-lower"]');
        var current = document.querySelector('[data-live-part="job-lower"]');
        if (!fresh || !current) return;
        current.replaceWith(document.importNode(fresh, true));
        lowerSignature = signature;
      })
      .catch(function () { lowerBusy = false; });
  }

  function live(name, update) {
    var els = document.querySelectorAll('[data-live="' + name + '"]');
    for (var i = 0; i < els.length; i++) update(els[i]);
  }

  function liveText(name, text) {
    live(name, function (el) { if (el.textContent !== String(text)) el.textContent = String(text); });
  }

  function stamp(iso) {
    return iso ? iso.slice(0, 10) + " " + clock(iso) + " UTC" : "—";
  }

  function metricText(key, value) {
    if (typeof value !== "number") return key + " " + value;
    return key + " " + (key === "tokens" ? value.toFixed(0) : value.toFixed(4));
  }

  function renderCheckpoints(checkpoints) {
    if (!checkpoints) return;
    var body = document.querySelector('[data-live="checkpoint_rows"]');
    if (!body) return;
    var signature = JSON.stringify(checkpoints);
    if (body.getAttribute("data-signature") === signature) return;
    body.setAttribute("data-signature", signature);
    var rows = checkpoints.map(function (c) {
      var tr = document.createElement("tr");
      var step = document.createElement("td");
      step.className = "num";
      step.textContent = c.step;
      var metrics = document.createElement("td");
      metrics.className = "small";
      var keys = Object.keys(c.metrics || {});
      metrics.textContent = keys.length ? keys.map(function (k) { return metricText(k, c.metrics[k]); }).join(" · ") : "—";
      var best = document.createElement("td");
      if (c.is_best) best.appendChild(badge("succeeded", "Best"));
      tr.append(step, metrics, best);
      return tr;
    });
    body.replaceChildren.apply(body, rows);
    live("checkpoints", function (el) { el.hidden = !checkpoints.length; });
    live("no_checkpoints", function (el) { el.hidden = !!checkpoints.length; });
  }

  function renderEvents(card, events) {
    var list = field(card, "events");
    if (!list) return;
    var items = (events || []).map(function (event) {
      var li = document.createElement("li");
      var time = document.createElement("span");
      time.className = "muted";
      time.textContent = clock(event.created_at);
      li.append(time, " " + event.message);
      return li;
    });
    if (!items.length) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "No events yet.";
      items.push(empty);
    }
    var signature = items.map(function (li) { return li.textContent; }).join("\n");
    if (list.getAttribute("data-signature") === signature) return;
    list.setAttribute("data-signature", signature);
    list.replaceChildren.apply(list, items);
  }

  function renderEvaluation(card, evaluation) {
    show(field(card, "evaluation"), !!evaluation);
    if (!evaluation) return;
    setText(card, "eval_tv_before", Number(evaluation.tv_before).toFixed(4));
    setText(card, "eval_tv_after", Number(evaluation.tv_after).toFixed(4));
    setText(card, "eval_kl", Number(evaluation.kl_estimate).toFixed(4));
  }

  function render(card, data) {
    replaceBadge(field(card, "status"), data.status, data.status_display);
    renderSteps(card, data.steps);
    var detail = field(card, "status_detail");
    if (detail) {
      detail.textContent = data.status_detail || "";
      show(detail, !!data.status_detail);
    }
    show(field(card, "billing_pending"), !!data.billing_pending);
    setText(card, "candidates", data.candidates);
    renderJob(card, data.job);
    renderEvents(card, data.events);
    renderEvaluation(card, data.evaluation);
    refreshLower(data);
    card.setAttribute("data-status", data.status);
  }

  function poll(card) {
    var url = card.getAttribute("data-progress-url");
    var timer = null;
    var busy = false;

    function schedule() {
      timer = window.setTimeout(tick, INTERVAL_MS);
    }

    function tick() {
      timer = null;
      if (document.hidden) { // no requests from background tabs; visibilitychange restarts the loop
        return;
      }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (response) {
          if (response.status === 404) throw new Error("stop");
          if (!response.ok) return null; // a passing server error: try again at the next tick
          return response.json();
        })
        .then(function (data) {
          busy = false;
          if (!data) return schedule();
          render(card, data);
          // A delivered round still settles its payments; keep following it until that is done too.
          if (FINAL[data.status] && !data.billing_pending) {
            card.setAttribute("data-final", "true");
            return;
          }
          schedule();
        })
        .catch(function (error) {
          busy = false;
          if (error && error.message === "stop") return;
          schedule(); // network hiccup: keep trying
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && timer === null && !busy && card.getAttribute("data-final") !== "true") tick();
    });
    schedule();
  }

  function start() {
    var cards = document.querySelectorAll("[data-round-progress]");
    Array.prototype.forEach.call(cards, function (card) {
      if (card.getAttribute("data-final") === "true" || card.hasAttribute("data-polling")) return;
      card.setAttribute("data-polling", "true");
      poll(card);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
