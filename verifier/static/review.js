// Review pages: select-all for bulk actions, the document viewer (zoom, pan, rotate), the
// keyboard shortcuts with their `?` overlay, and lease renewal. Loaded as a file (the CSP allows
// no inline script); every part is optional per page, and every action it speeds up is a plain
// form or link that works without it.
(function () {
  "use strict";

  var status = document.getElementById("kbd-status");
  function announce(text) { if (status) { status.textContent = text; } }

  // Queue: one checkbox selects every row on the page.
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll(".row-select").forEach(function (box) { box.checked = all.checked; });
    });
  }

  // --- Document viewer: transforms inside a fixed frame (set via CSSOM, which CSP allows). ---
  var viewers = [];
  document.querySelectorAll(".viewer").forEach(function (frame) {
    var image = frame.querySelector("img");
    if (!image) { return; }
    var tools = document.querySelector('.viewer-tools[aria-controls="' + frame.id + '"]');
    var v = { frame: frame, image: image, zoom: 1, turn: 0, x: 0, y: 0 };
    frame.classList.add("js-viewer");
    if (tools) { tools.hidden = false; }

    v.apply = function () {
      // A quarter turn swaps width and height: shrink so the turned image stays in its frame.
      var w = image.clientWidth || 1, h = image.clientHeight || 1;
      var quarter = v.turn % 180 !== 0;
      var fit = quarter ? Math.min(frame.clientWidth / h, frame.clientHeight / w, 1) : 1;
      var scale = v.zoom * fit;
      // Pan no further than the image's edge; the frame clips the rest, the page never widens.
      var maxX = Math.max(0, ((quarter ? h : w) * scale - frame.clientWidth) / 2);
      var maxY = Math.max(0, ((quarter ? w : h) * scale - frame.clientHeight) / 2);
      v.x = Math.max(-maxX, Math.min(maxX, v.x));
      v.y = Math.max(-maxY, Math.min(maxY, v.y));
      image.style.transform = "translate(" + v.x + "px, " + v.y + "px) rotate(" + v.turn +
        "deg) scale(" + scale + ")";
      frame.classList.toggle("zoomed", v.zoom > 1);
    };
    v.act = function (action) {
      if (action === "zoom-in") { v.zoom = Math.min(v.zoom * 1.5, 8); }
      if (action === "zoom-out") { v.zoom = Math.max(v.zoom / 1.5, 0.5); }
      if (action === "rotate") { v.turn = (v.turn + 90) % 360; }
      if (action === "reset") { v.zoom = 1; v.turn = 0; v.x = 0; v.y = 0; }
      if (v.zoom <= 1) { v.x = 0; v.y = 0; }
      v.apply();
    };
    v.pan = function (dx, dy) { v.x += dx; v.y += dy; v.apply(); };

    if (tools) {
      tools.addEventListener("click", function (event) {
        var button = event.target.closest("[data-viewer]");
        if (button) { setCurrentViewer(v); v.act(button.getAttribute("data-viewer")); }
      });
    }
    // Drag to pan (mouse, pen or finger); a double click zooms in, or back out.
    var drag = null;
    frame.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) { return; }
      setCurrentViewer(v);
      drag = { id: event.pointerId, x: event.clientX, y: event.clientY, ox: v.x, oy: v.y };
      frame.setPointerCapture(event.pointerId);
      frame.classList.add("panning");
    });
    frame.addEventListener("pointermove", function (event) {
      if (!drag || drag.id !== event.pointerId) { return; }
      v.x = drag.ox + event.clientX - drag.x;
      v.y = drag.oy + event.clientY - drag.y;
      v.apply();
    });
    function endDrag() { drag = null; frame.classList.remove("panning"); }
    frame.addEventListener("pointerup", endDrag);
    frame.addEventListener("pointercancel", endDrag);
    frame.addEventListener("dblclick", function () { v.act(v.zoom > 1 ? "reset" : "zoom-in"); });
    // Arrow keys pan while the frame has focus (and the image is bigger than the frame).
    frame.addEventListener("keydown", function (event) {
      var step = { ArrowLeft: [60, 0], ArrowRight: [-60, 0], ArrowUp: [0, 60], ArrowDown: [0, -60] };
      if (step[event.key] && v.zoom > 1 && !event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        v.pan(step[event.key][0], step[event.key][1]);
      }
    });
    frame.addEventListener("focus", function () { setCurrentViewer(v); });
    image.addEventListener("load", v.apply);
    viewers.push(v);
  });
  window.addEventListener("resize", function () { viewers.forEach(function (v) { v.apply(); }); });

  var currentViewer = null;
  function setCurrentViewer(v) {
    if (currentViewer === v) { return; }
    if (currentViewer) { currentViewer.frame.classList.remove("viewer-current"); }
    currentViewer = v;
    v.frame.classList.add("viewer-current");
  }
  function viewerForAction() {
    if (currentViewer) { return currentViewer; }
    var group = currentCheck && currentCheck.closest(".doc-group");
    var inGroup = group && viewers.filter(function (v) { return group.contains(v.frame); })[0];
    return inGroup || viewers[0] || null;
  }
  function stepViewer(delta) {
    if (!viewers.length) { return; }
    var at = currentViewer ? viewers.indexOf(currentViewer) : (delta > 0 ? -1 : 0);
    var next = viewers[(at + delta + viewers.length) % viewers.length];
    next.frame.focus({ preventScroll: true });
    next.frame.scrollIntoView({ block: "nearest" });
    setCurrentViewer(next);
    var group = next.frame.closest(".doc-group");
    var open = group && openChecks().filter(function (c) { return group.contains(c); })[0];
    if (open) { setCurrentCheck(open); }
  }

  // --- The checklist: the current check is the one that Y / N / X answer. ---
  var checks = Array.prototype.slice.call(document.querySelectorAll("fieldset.check[data-check]"));
  var currentCheck = null;
  function isAnswered(check) { return !!check.querySelector("input[type=radio]:checked"); }
  function openChecks() { return checks.filter(function (c) { return !isAnswered(c); }); }
  function setCurrentCheck(check) {
    if (currentCheck) { currentCheck.classList.remove("check-current"); }
    currentCheck = check;
    if (check) { check.classList.add("check-current"); }
  }
  function checkLabel(check) { return check.querySelector("legend").textContent.trim(); }
  checks.forEach(function (check) {
    check.addEventListener("focusin", function () { setCurrentCheck(check); });
  });
  setCurrentCheck(openChecks()[0] || null);

  function goToNextOpenCheck() {
    var open = openChecks();
    var after = open.filter(function (c) {
      return currentCheck && (currentCheck.compareDocumentPosition(c) & Node.DOCUMENT_POSITION_FOLLOWING);
    });
    var next = after[0] || open[0];
    if (next) {
      setCurrentCheck(next);
      var radio = next.querySelector("input[type=radio]");
      radio.focus({ preventScroll: true });
      next.scrollIntoView({ block: "nearest" });
      return "Next: " + checkLabel(next) + ".";
    }
    setCurrentCheck(null);
    var approve = document.getElementById("approve-next");
    if (approve) { approve.focus(); }
    return "Every check is answered. A approves and opens the next case.";
  }
  function answer(check, value) {
    var radio = check && check.querySelector('input[type=radio][value="' + value + '"]');
    if (!radio) { return false; }
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }
  var ANSWER_WORDS = { yes: "Yes", no: "No", not_applicable: "Not applicable" };
  function answerCurrent(value) {
    var check = currentCheck || openChecks()[0];
    if (!answer(check, value)) { return; }
    setCurrentCheck(check);
    announce(ANSWER_WORDS[value] + ": " + checkLabel(check) + ". " + goToNextOpenCheck());
  }
  function answerGroupYes() {
    var check = currentCheck || openChecks()[0];
    var group = check && check.closest(".doc-group");
    if (!group) { return; }
    var done = openChecks().filter(function (c) { return group.contains(c); });
    done.forEach(function (c) { answer(c, "yes"); });
    if (done.length) {
      setCurrentCheck(done[done.length - 1]);
      var title = group.querySelector("h2").textContent.trim();
      announce("Yes to " + done.length + " check(s) of the " + title + ". " + goToNextOpenCheck());
    }
  }

  // --- Decisions, compare, next case: each presses a real button or follows a real link. ---
  function submitWith(id) {
    var button = document.getElementById(id);
    if (!button || !button.form) { return; }
    if (button.form.requestSubmit) { button.form.requestSubmit(button); } else { button.click(); }
  }
  function focusField(element) {
    if (!element) { return; }
    element.scrollIntoView({ block: "center" });
    element.focus({ preventScroll: true });
  }
  var workbench = document.getElementById("workbench");
  var compareLink = document.getElementById("compare-link");
  function toggleCompare(event) {
    if (!workbench || !compareLink) { return; }
    if (event) { event.preventDefault(); }
    var on = !workbench.classList.contains("compare");
    workbench.classList.toggle("compare", on);
    compareLink.textContent = on ? "Back to one document per row" : "Compare card and ID side by side";
    var url = new URL(window.location.href);
    if (on) { url.searchParams.set("compare", "1"); } else { url.searchParams.delete("compare"); }
    compareLink.href = on ? url.pathname : url.pathname + "?compare=1";
    window.history.replaceState(null, "", url.pathname + url.search);
    viewers.forEach(function (v) { v.apply(); });
    announce(on ? "Card and ID side by side." : "One document per row.");
  }
  if (compareLink) { compareLink.addEventListener("click", toggleCompare); }

  var help = document.getElementById("shortcut-help");
  var helpButton = document.getElementById("shortcut-open");
  function toggleHelp() {
    if (!help || !help.showModal) { return; }
    if (help.open) { help.close(); } else { help.showModal(); }
  }
  if (help && help.showModal && helpButton) {
    helpButton.hidden = false;
    helpButton.addEventListener("click", toggleHelp);
  }

  function typing(target) {
    if (!target || !target.tagName) { return false; }
    if (target.isContentEditable) { return true; }
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") { return true; }
    if (tag !== "input") { return false; }
    var type = (target.getAttribute("type") || "text").toLowerCase();
    return ["radio", "checkbox", "button", "submit", "reset", "image", "range", "color"]
      .indexOf(type) === -1;
  }

  var KEYS = {
    "?": toggleHelp,
    "N": function () { submitWith("next-case"); },
    "j": function () { stepViewer(1); },
    "k": function () { stepViewer(-1); },
    "+": function () { var v = viewerForAction(); if (v) { setCurrentViewer(v); v.act("zoom-in"); } },
    "=": function () { KEYS["+"](); },
    "-": function () { var v = viewerForAction(); if (v) { setCurrentViewer(v); v.act("zoom-out"); } },
    "0": function () { var v = viewerForAction(); if (v) { v.act("reset"); } },
    "r": function () { var v = viewerForAction(); if (v) { setCurrentViewer(v); v.act("rotate"); } },
    "c": function () { toggleCompare(null); },
    "y": function () { answerCurrent("yes"); },
    "n": function () { answerCurrent("no"); },
    "x": function () { answerCurrent("not_applicable"); },
    "Y": answerGroupYes,
    "a": function () { submitWith("approve-next"); },
    "A": function () { submitWith("approve"); },
    "d": function () { focusField(document.getElementById("reason_code")); },
    "s": function () {
      var form = document.getElementById("resubmit-form");
      focusField(form && form.querySelector("input[type=checkbox], textarea"));
    }
  };
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;  // never a shortcut while typing
    }
    if (help && help.open && event.key !== "?") { return; }
    var run = KEYS[event.key];
    if (!run) { return; }
    event.preventDefault();
    run();
  });

  // --- Lease: renew the claim every few minutes while the page is open. ---
  var lease = document.getElementById("lease");
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  if (lease && tokenMeta && window.fetch) {
    var url = lease.getAttribute("data-renew-url");
    var every = Math.max(parseInt(lease.getAttribute("data-renew-seconds"), 10) || 300, 30) * 1000;
    var timer = window.setInterval(renew, every);
    function renew() {
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": tokenMeta.getAttribute("content"), "Accept": "application/json" }
      }).then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") === -1) {
          // Redirected to sign-in, or refused before the view: the claim cannot be kept.
          return { ok: false, body: { message: "You are no longer signed in." } };
        }
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (result) {
        if (result.ok) {
          var until = new Date(result.body.lease_expires_at);
          var time = lease.querySelector("time");
          if (time) { time.textContent = until.toISOString().slice(11, 16); }
        } else {
          window.clearInterval(timer);
          lease.textContent = result.body.message + " Reload the page before deciding.";
          lease.classList.add("lease-lost");
        }
      }).catch(function () {
        // A network hiccup: try again at the next tick; the lease outlives a missed renewal.
      });
    }
  }
})();
