// Customer portal: upload each document with a progress bar, preview it, and on card photos
// let the customer paint over digits before the image leaves the device. No inline script
// (strict CSP); without JavaScript the forms still work as plain uploads.
(function () {
  "use strict";
  var slots = document.getElementById("slots");
  if (!slots) return;
  var requiredSets = JSON.parse(slots.getAttribute("data-required-sets") || "[]");
  var uploaded = new Set(JSON.parse(slots.getAttribute("data-uploaded") || "[]"));
  var submitButton = document.getElementById("submit-button");
  var submitHelp = document.getElementById("submit-help");
  var MAX_EDGE = 2560;

  function updateSubmit() {
    var complete = requiredSets.some(function (set) {
      return set.every(function (kind) { return uploaded.has(kind); });
    });
    submitButton.disabled = !complete;
    submitButton.setAttribute("aria-disabled", complete ? "false" : "true");
    submitHelp.textContent = complete
      ? "Everything needed is here. Send it for review."
      : "Add the documents above, then send them for review.";
  }

  function setupSlot(slot) {
    var kind = slot.getAttribute("data-kind");
    var isCard = slot.getAttribute("data-card") === "yes";
    var form = slot.querySelector(".upload-form");
    var inputs = slot.querySelectorAll(".file-input");
    var progress = slot.querySelector(".progress");
    var errorBox = slot.querySelector(".slot-error");
    var stateBox = slot.querySelector(".slot-state");
    var uploadButton = slot.querySelector(".upload-button");
    var maskTool = slot.querySelector(".mask-tool");
    var canvas = slot.querySelector(".mask-canvas");
    var chosen = null;      // the File the customer picked
    var image = null;       // decoded image, for card masking
    var boxes = [];         // painted rectangles, in canvas pixels

    uploadButton.hidden = true;

    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = false;
    }

    function clearError() {
      errorBox.hidden = true;
      errorBox.textContent = "";
    }

    function redraw() {
      var ctx = canvas.getContext("2d");
      ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      ctx.fillStyle = "#000";
      boxes.forEach(function (b) { ctx.fillRect(b.x, b.y, b.w, b.h); });
    }

    function startMasking(file) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () {
        var scale = Math.min(1, MAX_EDGE / Math.max(img.naturalWidth, img.naturalHeight));
        canvas.width = Math.round(img.naturalWidth * scale);
        canvas.height = Math.round(img.naturalHeight * scale);
        image = img;
        boxes = [];
        redraw();
        maskTool.hidden = false;
        uploadButton.textContent = "Upload covered photo";
        uploadButton.hidden = false;
      };
      img.onerror = function () {
        // Not decodable here (HEIC on most browsers, or a PDF): send as it is.
        URL.revokeObjectURL(url);
        image = null;
        maskTool.hidden = true;
        upload(file, file.name);
      };
      img.src = url;
    }

    function canvasPoint(event) {
      var rect = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - rect.left) * (canvas.width / rect.width),
        y: (event.clientY - rect.top) * (canvas.height / rect.height)
      };
    }

    if (canvas) {
      var start = null;
      canvas.addEventListener("pointerdown", function (event) {
        start = canvasPoint(event);
        canvas.setPointerCapture(event.pointerId);
        boxes.push({ x: start.x, y: start.y, w: 0, h: 0 });
        event.preventDefault();
      });
      canvas.addEventListener("pointermove", function (event) {
        if (!start) return;
        var p = canvasPoint(event);
        var box = boxes[boxes.length - 1];
        box.x = Math.min(start.x, p.x);
        box.y = Math.min(start.y, p.y);
        box.w = Math.abs(p.x - start.x);
        box.h = Math.abs(p.y - start.y);
        redraw();
      });
      ["pointerup", "pointercancel"].forEach(function (name) {
        canvas.addEventListener(name, function () {
          var box = boxes[boxes.length - 1];
          if (box && (box.w < 4 || box.h < 4)) boxes.pop();
          start = null;
          redraw();
        });
      });
      slot.querySelector(".mask-undo").addEventListener("click", function () {
        boxes.pop();
        redraw();
      });
      slot.querySelector(".mask-clear").addEventListener("click", function () {
        boxes = [];
        redraw();
      });
    }

    function showReceived(body) {
      stateBox.textContent = "";
      var p = document.createElement("p");
      p.className = "received";
      p.textContent = body.document.pages > 1
        ? "Received (" + body.document.pages + " pages). You can replace it below."
        : "Received. You can replace it below.";
      stateBox.appendChild(p);
      var previews = document.createElement("div");
      previews.className = "previews";
      body.document.previews.forEach(function (src, i) {
        var img = document.createElement("img");
        img.src = src;
        img.alt = slot.querySelector("h2").textContent + ", page " + (i + 1);
        previews.appendChild(img);
      });
      stateBox.appendChild(previews);
      body.document.warnings.forEach(function (w) {
        var warn = document.createElement("p");
        warn.className = "warning";
        warn.textContent = w.message;
        stateBox.appendChild(warn);
      });
    }

    function upload(blob, name) {
      clearError();
      var data = new FormData();
      data.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
      data.append("file", blob, name || "photo.jpg");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      progress.hidden = false;
      progress.value = 0;
      uploadButton.disabled = true;
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
      });
      xhr.upload.addEventListener("load", function () {
        progress.removeAttribute("value");  // indeterminate while the server checks the photo
        stateBox.textContent = "Checking your file…";
      });
      xhr.addEventListener("load", function () {
        progress.hidden = true;
        uploadButton.disabled = false;
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 201 && body && body.document) {
          uploaded.add(kind);
          maskTool.hidden = true;
          uploadButton.hidden = true;
          chosen = null;
          showReceived(body);
          updateSubmit();
        } else {
          stateBox.textContent = "";
          showError(body && body.error ? body.error.message
            : "The upload did not work (error " + xhr.status + "). Please try again.");
        }
      });
      xhr.addEventListener("error", function () {
        progress.hidden = true;
        uploadButton.disabled = false;
        stateBox.textContent = "";
        showError("The connection was interrupted. Please check your connection and try again.");
      });
      xhr.send(data);
    }

    inputs.forEach(function (input) {
      input.addEventListener("change", function () {
        if (!input.files || !input.files[0]) return;
        chosen = input.files[0];
        input.value = "";
        clearError();
        if (isCard && chosen.type !== "application/pdf") {
          startMasking(chosen);
        } else {
          upload(chosen, chosen.name);
        }
      });
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (image) {
        redraw();
        // The painted canvas, not the original file, is what leaves the device.
        canvas.toBlob(function (blob) { upload(blob, "card.jpg"); }, "image/jpeg", 0.92);
      } else if (chosen) {
        upload(chosen, chosen.name);
      } else {
        showError("Choose a file or take a photo first.");
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
})();
