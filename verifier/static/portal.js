// Customer portal: upload each document with a progress bar, preview it, and on card photos
// let the customer paint over digits: before the image leaves the device when the browser can
// draw it, or over the server's preview (HEIC, PDF) afterwards. A card photo counts only once
// the customer confirms its numbers are covered. No inline script (strict CSP); without
// JavaScript the forms still work as plain uploads with a "covered" box to tick. "Take a
// photo" opens the in-page camera (capture.js) where the browser has one; its photo takes the
// same way as a chosen file. Messages come translated from the page's JSON block.
(function () {
  "use strict";
  var slots = document.getElementById("slots");
  if (!slots) return;
  var guidance = document.getElementById("portal-guidance");
  var M = guidance ? JSON.parse(guidance.textContent).messages : {};
  function fill(message, values) {
    return message.replace(/%\((\w+)\)s/g, function (all, name) {
      return name in values ? String(values[name]) : all;
    });
  }
  var requiredSets = JSON.parse(slots.getAttribute("data-required-sets") || "[]");
  var uploaded = new Set(JSON.parse(slots.getAttribute("data-uploaded") || "[]"));
  var pendingCover = new Set();
  var submitButton = document.getElementById("submit-button");
  var submitHelp = document.getElementById("submit-help");
  var MAX_EDGE = 2560;
  var busy = 0;  // uploads or covering in progress here: never reload under them

  function updateSubmit() {
    var complete = requiredSets.some(function (set) {
      return set.every(function (kind) { return uploaded.has(kind) && !pendingCover.has(kind); });
    });
    submitButton.disabled = !complete;
    submitButton.setAttribute("aria-disabled", complete ? "false" : "true");
    submitHelp.textContent = complete ? M.complete
      : pendingCover.size ? M.cover_then_send : M.add_documents;
  }

  // Boxes painted over one picture, by pointer or keyboard, in canvas pixels.
  function Painter(canvas, image, onChange) {
    var self = this;
    self.boxes = [];
    var frame = null;  // the keyboard's frame
    var start = null;
    function redraw() {
      var ctx = canvas.getContext("2d");
      ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      ctx.fillStyle = "#000";
      self.boxes.forEach(function (b) { ctx.fillRect(b.x, b.y, b.w, b.h); });
      if (frame && document.activeElement === canvas) {
        ctx.strokeStyle = "#ffb703";
        ctx.lineWidth = Math.max(3, canvas.width / 200);
        ctx.setLineDash([12, 8]);
        ctx.strokeRect(frame.x, frame.y, frame.w, frame.h);
        ctx.setLineDash([]);
      }
      if (onChange) onChange();
    }
    self.redraw = redraw;
    self.undo = function () { self.boxes.pop(); redraw(); };
    self.clear = function () { self.boxes = []; redraw(); };
    self.fractions = function () {
      return self.boxes.map(function (b) {
        return [b.x / canvas.width, b.y / canvas.height, b.w / canvas.width, b.h / canvas.height];
      });
    };
    function point(event) {
      var rect = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - rect.left) * (canvas.width / rect.width),
        y: (event.clientY - rect.top) * (canvas.height / rect.height)
      };
    }
    canvas.addEventListener("pointerdown", function (event) {
      start = point(event);
      canvas.setPointerCapture(event.pointerId);
      self.boxes.push({ x: start.x, y: start.y, w: 0, h: 0 });
      event.preventDefault();
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!start) return;
      var p = point(event);
      var box = self.boxes[self.boxes.length - 1];
      box.x = Math.min(start.x, p.x);
      box.y = Math.min(start.y, p.y);
      box.w = Math.abs(p.x - start.x);
      box.h = Math.abs(p.y - start.y);
      redraw();
    });
    ["pointerup", "pointercancel"].forEach(function (name) {
      canvas.addEventListener(name, function () {
        var box = self.boxes[self.boxes.length - 1];
        if (start && box && (box.w < 4 || box.h < 4)) self.boxes.pop();
        start = null;
        redraw();
      });
    });
    // Keyboard: a frame moved by the arrows, resized with Shift, painted with Enter or Space.
    canvas.addEventListener("focus", function () {
      if (!frame) {
        frame = { x: canvas.width * 0.1, y: canvas.height * 0.42,
                  w: canvas.width * 0.8, h: canvas.height * 0.16 };
      }
      redraw();
    });
    canvas.addEventListener("blur", redraw);
    canvas.addEventListener("keydown", function (event) {
      var step = (event.altKey ? 0.01 : 0.04);
      var dx = { ArrowLeft: -1, ArrowRight: 1 }[event.key] || 0;
      var dy = { ArrowUp: -1, ArrowDown: 1 }[event.key] || 0;
      if (dx || dy) {
        if (event.shiftKey) {
          frame.w = Math.max(8, Math.min(canvas.width - frame.x, frame.w + dx * step * canvas.width));
          frame.h = Math.max(8, Math.min(canvas.height - frame.y, frame.h + dy * step * canvas.height));
        } else {
          frame.x = Math.max(0, Math.min(canvas.width - frame.w, frame.x + dx * step * canvas.width));
          frame.y = Math.max(0, Math.min(canvas.height - frame.h, frame.y + dy * step * canvas.height));
        }
      } else if (event.key === "Enter" || event.key === " ") {
        self.boxes.push({ x: frame.x, y: frame.y, w: frame.w, h: frame.h });
      } else if (event.key === "Backspace" || event.key === "Delete") {
        self.boxes.pop();
      } else {
        return;
      }
      event.preventDefault();
      redraw();
    });
  }

  function setupSlot(slot) {
    var kind = slot.getAttribute("data-kind");
    var isCard = slot.getAttribute("data-card") === "yes";
    var form = slot.querySelector(".upload-form");
    var inputs = slot.querySelectorAll(".file-input");
    var progress = slot.querySelector(".progress");
    var errorBox = slot.querySelector(".upload-form .slot-error");
    var stateBox = slot.querySelector(".slot-state");
    var uploadButton = slot.querySelector(".upload-button");
    var maskTool = slot.querySelector(".mask-tool");
    var canvas = slot.querySelector(".mask-canvas");
    var covered = slot.querySelector("input[name=covered]");
    var coverForm = slot.querySelector(".cover-form");
    var chosen = null;      // the File the customer picked
    var painter = null;     // for a card photo the browser can draw
    var coverPainters = []; // for the server's preview of each page

    uploadButton.hidden = true;
    if (covered) {
      covered.addEventListener("change", function () { uploadButton.disabled = !covered.checked; });
    }

    function showError(box, message) {
      box.textContent = message;
      box.hidden = false;
    }

    function clearError() {
      errorBox.hidden = true;
      errorBox.textContent = "";
    }

    function startMasking(file) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () {
        var scale = Math.min(1, MAX_EDGE / Math.max(img.naturalWidth, img.naturalHeight));
        canvas.width = Math.round(img.naturalWidth * scale);
        canvas.height = Math.round(img.naturalHeight * scale);
        painter = new Painter(canvas, img);
        painter.redraw();
        maskTool.hidden = false;
        uploadButton.textContent = M.upload_covered;
        uploadButton.hidden = false;
        uploadButton.disabled = !covered.checked;
      };
      img.onerror = function () {
        // Not drawable here (HEIC on most browsers): send it, then cover the server's preview.
        URL.revokeObjectURL(url);
        painter = null;
        maskTool.hidden = true;
        upload(file, file.name, "pending");
      };
      img.src = url;
    }

    if (canvas) {
      slot.querySelector(".mask-undo").addEventListener("click", function () { painter && painter.undo(); });
      slot.querySelector(".mask-clear").addEventListener("click", function () { painter && painter.clear(); });
    }

    function showReceived(doc) {
      stateBox.textContent = "";
      var p = document.createElement("p");
      if (doc.needs_cover) {
        p.className = "needs-cover";
        p.textContent = M.needs_cover;
      } else {
        p.className = "received";
        p.textContent = doc.pages > 1 ? fill(M.received_pages, { pages: doc.pages }) : M.received;
      }
      stateBox.appendChild(p);
      var previews = document.createElement("div");
      previews.className = "previews";
      doc.previews.forEach(function (src, i) {
        var img = document.createElement("img");
        img.src = src;
        img.setAttribute("data-doc", doc.ids[i]);
        img.alt = fill(M.page_alt, { document: slot.querySelector("h2").textContent, page: i + 1 });
        previews.appendChild(img);
      });
      stateBox.appendChild(previews);
      doc.warnings.forEach(function (w) {
        var warn = document.createElement("p");
        warn.className = "warning";
        warn.textContent = w.message;
        stateBox.appendChild(warn);
      });
      if (doc.needs_cover) {
        pendingCover.add(kind);
        startCover(doc.ids, doc.previews);
      } else {
        pendingCover.delete(kind);
        if (coverForm) coverForm.hidden = true;
      }
    }

    // Covering the server's preview: one canvas a page, boxes sent as fractions of it.
    function startCover(ids, sources) {
      var holder = coverForm.querySelector(".cover-canvases");
      holder.textContent = "";
      coverPainters = [];
      coverForm.hidden = false;
      coverForm.querySelector(".cover-actions").hidden = false;
      ids.forEach(function (id, i) {
        var img = new Image();
        var c = document.createElement("canvas");
        c.className = "mask-canvas";
        c.tabIndex = 0;
        c.setAttribute("role", "img");
        c.setAttribute("aria-label", fill(M.cover_page_label, { page: i + 1 }));
        c.setAttribute("data-doc", id);
        holder.appendChild(c);
        img.onload = function () {
          c.width = img.naturalWidth;
          c.height = img.naturalHeight;
          var p = new Painter(c, img);
          p.doc = id;
          coverPainters.push(p);
          p.redraw();
        };
        img.src = sources[i];
      });
    }

    if (coverForm) {
      coverForm.querySelector(".cover-undo").addEventListener("click", function () {
        coverPainters.forEach(function (p) { if (p.boxes.length) p.undo(); });
      });
      coverForm.querySelector(".cover-clear").addEventListener("click", function () {
        coverPainters.forEach(function (p) { p.clear(); });
      });
      var pendingImgs = stateBox.querySelectorAll(".previews img");
      if (!coverForm.hidden && pendingImgs.length) {
        pendingCover.add(kind);
        startCover(Array.prototype.map.call(pendingImgs, function (i) { return i.getAttribute("data-doc"); }),
                   Array.prototype.map.call(pendingImgs, function (i) { return i.getAttribute("src"); }));
      }
      coverForm.addEventListener("submit", function (event) {
        event.preventDefault();
        var errorEl = coverForm.querySelector(".cover-error");
        errorEl.hidden = true;
        var boxes = {};
        coverPainters.forEach(function (p) { boxes[p.doc] = p.fractions(); });
        var data = new FormData(coverForm);
        data.set("boxes", JSON.stringify(boxes));
        var xhr = new XMLHttpRequest();
        xhr.open("POST", coverForm.action);
        xhr.setRequestHeader("Accept", "application/json");
        busy += 1;
        xhr.addEventListener("loadend", function () { busy -= 1; });
        xhr.addEventListener("load", function () {
          var body = null;
          try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
          if (xhr.status === 200 && body && body.document) {
            showReceived(body.document);
            refreshFingerprint();
            updateSubmit();
          } else {
            showError(errorEl, body && body.error ? body.error.message
              : fill(M.cover_failed, { status: xhr.status }));
          }
        });
        xhr.send(data);
      });
    }

    function upload(blob, name, cover) {
      clearError();
      var data = new FormData();
      data.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
      data.append("file", blob, name || "photo.jpg");
      if (cover) data.append("cover", cover);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      progress.hidden = false;
      progress.value = 0;
      uploadButton.disabled = true;
      busy += 1;
      xhr.addEventListener("loadend", function () { busy -= 1; });
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
      });
      xhr.upload.addEventListener("load", function () {
        progress.removeAttribute("value");  // indeterminate while the server checks the photo
        stateBox.textContent = M.checking;
      });
      xhr.addEventListener("load", function () {
        progress.hidden = true;
        uploadButton.disabled = false;
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 201 && body && body.document) {
          uploaded.add(kind);
          cameraNote.hidden = true;
          maskTool.hidden = true;
          uploadButton.hidden = true;
          chosen = null;
          painter = null;
          showReceived(body.document);
          refreshFingerprint();
          updateSubmit();
        } else {
          stateBox.textContent = "";
          showError(errorBox, body && body.error ? body.error.message
            : fill(M.upload_failed, { status: xhr.status }));
        }
      });
      xhr.addEventListener("error", function () {
        progress.hidden = true;
        uploadButton.disabled = false;
        stateBox.textContent = "";
        showError(errorBox, M.interrupted);
      });
      xhr.send(data);
    }

    // A chosen file and a photo from the in-page camera go the same way.
    function take(file) {
      chosen = file;
      clearError();
      if (isCard && chosen.type === "application/pdf") {
        upload(chosen, chosen.name, "pending");
      } else if (isCard) {
        startMasking(chosen);
      } else {
        upload(chosen, chosen.name);
      }
    }

    inputs.forEach(function (input) {
      input.addEventListener("change", function () {
        if (!input.files || !input.files[0]) return;
        var file = input.files[0];
        input.value = "";
        take(file);
      });
    });

    // "Take a photo" (its label, or the input from the keyboard) opens the in-page camera;
    // without one, or once it was refused, the input opens the phone's camera app as before.
    var cameraInput = slot.querySelector("input[name=photo]");
    var cameraNote = slot.querySelector(".camera-note");
    var capture = window.verifierCapture;
    var native = false;  // let the next click through to the camera app
    function note(message) {
      cameraNote.textContent = message;
      cameraNote.hidden = false;
    }
    cameraInput.addEventListener("click", function (event) {
      if (native) {
        native = false;
        return;
      }
      if (!capture || !capture.supported()) {
        if (capture) note(M.camera_missing);
        return;
      }
      event.preventDefault();
      cameraNote.hidden = true;
      capture.open({
        kind: kind,
        step: slot.querySelector(".step").textContent,
        title: slot.querySelector("h2").textContent,
        opener: cameraInput,
        onFile: function (file, message) {
          note(message);  // "Photo taken.", for a screen reader too
          take(file);
        },
        onFail: function (message) {
          capture = null;  // the input opens the camera app from now on
          note(message);
        },
        onApp: function () {
          native = true;
          cameraInput.click();
        }
      });
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (painter) {
        if (!covered.checked) {
          showError(errorBox, M.tick_covered);
          return;
        }
        painter.redraw();
        // The painted canvas, not the original file, is what leaves the device.
        canvas.toBlob(function (blob) { upload(blob, "card.jpg", "painted"); }, "image/jpeg", 0.92);
      } else if (chosen) {
        upload(chosen, chosen.name);
      } else {
        showError(errorBox, M.choose_first);
      }
    });
  }

  Array.prototype.forEach.call(slots.querySelectorAll(".slot"), setupSlot);
  updateSubmit();

  // A second click on "Send for review" must not send twice.
  var submitForm = document.getElementById("submit-form");
  submitForm.addEventListener("submit", function () {
    setTimeout(function () { submitButton.disabled = true; }, 0);
  });

  // Uploads made on another device (the phone after the QR hand-off) show up here too.
  var statusUrl = slots.getAttribute("data-status-url");
  var fingerprint = slots.getAttribute("data-fingerprint");
  function refreshFingerprint() {
    fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s) fingerprint = s.fingerprint; })
      .catch(function () {});
  }
  window.verifierPortalPoll = function () {
    if (busy || document.hidden) return;
    fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s || busy || s.fingerprint === fingerprint) return;
        var note = document.getElementById("elsewhere");
        note.textContent = s.open ? M.elsewhere_new : M.elsewhere_sent;
        note.hidden = false;
        window.location.reload();
      })
      .catch(function () {});
  };
  setInterval(window.verifierPortalPoll, 5000);
})();

// The QR hand-off page: tell the desktop when the phone has sent the photos.
(function () {
  "use strict";
  var box = document.getElementById("handoff-status");
  if (!box) return;
  var guidance = document.getElementById("portal-guidance");
  var M = guidance ? JSON.parse(guidance.textContent).messages : {};
  var statusUrl = box.getAttribute("data-status-url");
  var start = box.getAttribute("data-fingerprint");
  function poll() {
    fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        if (!s.open) {
          box.textContent = M.handoff_sent;
          box.className = "received";
          var back = document.getElementById("handoff-back");
          if (back) back.textContent = M.handoff_status_link;
        } else if (s.fingerprint !== start) {
          box.textContent = s.ready.length
            ? M.handoff_documents.replace("%(count)s", String(s.ready.length)) : M.handoff_photo;
        }
      })
      .catch(function () {});
  }
  window.verifierHandoffPoll = poll;
  setInterval(poll, 4000);
})();
