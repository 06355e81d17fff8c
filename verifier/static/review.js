// Review pages: select-all for bulk actions, the document viewer, and lease renewal.
// Loaded as a file (the CSP allows no inline script); every part is optional per page.
(function () {
  "use strict";

  // Queue: one checkbox selects every row on the page.
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll(".row-select").forEach(function (box) { box.checked = all.checked; });
    });
  }

  // Document viewer: zoom and rotate through CSS transforms (set via CSSOM, which CSP allows).
  document.querySelectorAll(".viewer-tools").forEach(function (tools) {
    var frame = document.getElementById(tools.getAttribute("aria-controls"));
    var image = frame && frame.querySelector("img");
    if (!image) { return; }
    var state = { zoom: 1, turn: 0 };
    function apply() {
      // A quarter turn swaps width and height: shrink so the turned image stays in its frame.
      var w = image.clientWidth || 1, h = image.clientHeight || 1;
      var fit = state.turn % 180 ? Math.min(w / h, h / w) : 1;
      image.style.transform = "rotate(" + state.turn + "deg) scale(" + state.zoom * fit + ")";
      frame.classList.toggle("zoomed", state.zoom > 1);
    }
    tools.addEventListener("click", function (event) {
      var button = event.target.closest("[data-viewer]");
      if (!button) { return; }
      var action = button.getAttribute("data-viewer");
      if (action === "zoom-in") { state.zoom = Math.min(state.zoom * 1.5, 6); }
      if (action === "zoom-out") { state.zoom = Math.max(state.zoom / 1.5, 0.5); }
      if (action === "rotate") { state.turn = (state.turn + 90) % 360; }
      if (action === "reset") { state.zoom = 1; state.turn = 0; }
      apply();
    });
  });

  // Lease: renew the claim every few minutes while the page is open.
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
