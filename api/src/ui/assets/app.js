// Autoloader dashboard: confirmations, live updates and the schedule preview. No framework; the
// pages work without it (forms post as they are), it only adds what needs a script.
"use strict";

(function () {
  // After an action answered with the ingestion's page, show that page's own URL (a reload
  // then reads, never posts again).
  var region = document.getElementById("runs-region");
  if (region && window.history && window.history.replaceState) {
    var own = "/ui/ingestions/" + region.getAttribute("data-ingestion-id");
    if (location.pathname !== own) window.history.replaceState(null, "", own);
  }

  // ---- Confirmation dialog -------------------------------------------------------------
  var dialog = document.getElementById("confirm");
  var pending = null;
  var opener = null;

  function closeDialog() {
    if (dialog && dialog.open) dialog.close();
    if (opener) opener.focus();
    pending = null;
    opener = null;
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute("data-confirm") || form.getAttribute("data-confirmed") === "yes") return;
    if (!dialog || typeof dialog.showModal !== "function") return; // no dialog: post at once
    ev.preventDefault();
    pending = form;
    opener = ev.submitter || form.querySelector("button");
    document.getElementById("confirm-text").textContent = form.getAttribute("data-confirm");
    var box = document.getElementById("confirm-reason-box");
    var reason = document.getElementById("confirm-reason");
    var wantsReason = form.hasAttribute("data-reason");
    box.hidden = !wantsReason;
    reason.value = "";
    dialog.showModal();
    (wantsReason ? reason : document.getElementById("confirm-ok")).focus();
  });

  if (dialog) {
    document.getElementById("confirm-ok").addEventListener("click", function () {
      var form = pending;
      if (!form) return closeDialog();
      var field = form.querySelector('input[name="reason"]');
      if (field) field.value = document.getElementById("confirm-reason").value;
      form.setAttribute("data-confirmed", "yes");
      dialog.close();
      pending = null;
      form.submit();
    });
    document.getElementById("confirm-cancel").addEventListener("click", closeDialog);
    dialog.addEventListener("cancel", function () { opener && opener.focus(); pending = null; });
  }

  // ---- Live updates --------------------------------------------------------------------
  var liveState = document.getElementById("live-state");
  function setLive(state) {
    if (!liveState) return;
    liveState.textContent = state;
    liveState.setAttribute("data-state", state);
  }

  var timers = {};
  function later(key, fn) {
    clearTimeout(timers[key]);
    timers[key] = setTimeout(fn, 150);
  }

  // Replaces the element with `id` by the one of the same id in the HTML at `url`.
  function refresh(url, id) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById(id);
        var old = document.getElementById(id);
        if (fresh && old) old.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () {});
  }

  function refreshAll() {
    var runs = document.getElementById("runs-region");
    if (runs) later("runs", function () { refresh(runs.getAttribute("data-src"), "runs-region"); });
    if (document.getElementById("ingestions-region")) later("list", function () { refresh(location.href, "ingestions-region"); });
    if (document.getElementById("fleet-region")) later("fleet", function () { refresh(location.href, "fleet-region"); });
  }

  // One stream per visible page: a page kept in the back/forward cache closes its stream (the
  // browser allows few connections per host), and opens it again when it is shown.
  var source = null;
  function connect() {
    if (source || !liveState || !window.EventSource) return;
    source = new EventSource("/ui/events");
    source.addEventListener("open", function () { setLive("live"); });
    source.addEventListener("hello", function () { setLive("live"); });
    source.addEventListener("error", function () { setLive("reconnecting"); });
    source.addEventListener("resync", refreshAll);
    source.addEventListener("run", function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      var runs = document.getElementById("runs-region");
      if (runs && runs.getAttribute("data-ingestion-id") === data.ingestion_id) {
        later("runs", function () { refresh(runs.getAttribute("data-src"), "runs-region"); });
      }
      if (document.querySelector('#ingestions tr[data-ingestion-id="' + data.ingestion_id + '"]')) {
        later("list", function () { refresh(location.href, "ingestions-region"); });
      }
      if (document.getElementById("fleet-region")) {
        later("fleet", function () { refresh(location.href, "fleet-region"); });
      }
    });
    source.addEventListener("queue", function (ev) {
      var el = document.getElementById("queue-depth");
      if (!el) return;
      try { el.textContent = String(JSON.parse(ev.data).depth); } catch (e) { /* ignore */ }
    });
  }
  function disconnect() {
    if (!source) return;
    source.close();
    source = null;
    setLive("reconnecting");
  }
  connect();
  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted) {
      connect();
      refreshAll();
    }
  });

  // ---- Schedule preview ----------------------------------------------------------------
  var form = document.getElementById("ingestion-form");
  var preview = document.getElementById("schedule-preview");
  if (form && preview) {
    var fields = ["schedule_frequency", "schedule_time", "schedule_cron", "schedule_timezone"];
    var update = function () {
      var q = new URLSearchParams();
      fields.forEach(function (f) {
        var el = document.getElementById(f);
        if (el && el.value !== "") q.set(f, el.value);
      });
      fetch("/ui/schedule-preview?" + q.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (res) { return res.json(); })
        .then(function (body) {
          var list = document.createElement("ul");
          var note = preview.querySelector(".hint");
          if (body.runs) {
            body.runs.forEach(function (r) {
              var li = document.createElement("li");
              li.textContent = r.text;
              if (r.dst) {
                li.className = "dst";
                var b = document.createElement("span");
                b.className = "badge";
                b.textContent = r.dst;
                li.appendChild(document.createTextNode(" "));
                li.appendChild(b);
              }
              list.appendChild(li);
            });
          }
          var old = preview.querySelector("ul");
          if (old) old.replaceWith(list); else preview.appendChild(list);
          if (note) note.textContent = body.message || "";
        })
        .catch(function () {});
    };
    update();
    fields.forEach(function (f) {
      var el = document.getElementById(f);
      if (el) {
        el.addEventListener("input", function () { later("preview", update); });
        el.addEventListener("change", function () { later("preview", update); });
      }
    });
  }
})();
