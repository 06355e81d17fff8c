// Customer portal: the in-page camera behind "Take a photo". A frame the shape of the
// document sits over the live picture; every CHECKS.interval_ms the framed part of a small
// copy of the frame is measured (mean luma for light, the share of near-white pixels for
// glare, the variance of a Laplacian for sharpness) and the first problem is named. The photo
// can be taken at any time, or by itself once every check has passed for CHECKS.hold_ms.
// Without getUserMedia, or when the camera is refused, the page's file inputs stay the way
// in (portal.js shows why). Messages come translated from the page's JSON block.
(function () {
  "use strict";
  var block = document.getElementById("portal-guidance");
  var panel = document.getElementById("camera");
  var guidance = block ? JSON.parse(block.textContent) : { messages: {}, checks: {}, frames: {} };
  var M = guidance.messages;
  var C = guidance.checks;
  var MAX_EDGE = 2560;

  // The three measures of one RGBA frame (pure: tests call it on drawn pictures).
  function measure(rgba, width, height) {
    var n = width * height;
    var luma = new Float32Array(n);
    var sum = 0;
    var white = 0;
    for (var i = 0, j = 0; i < n; i += 1, j += 4) {
      var y = 0.299 * rgba[j] + 0.587 * rgba[j + 1] + 0.114 * rgba[j + 2];
      luma[i] = y;
      sum += y;
      if (y >= C.glare_luma) white += 1;
    }
    var lsum = 0;
    var lsq = 0;
    var count = 0;
    for (var row = 1; row < height - 1; row += 1) {
      for (var col = 1; col < width - 1; col += 1) {
        var k = row * width + col;
        var lap = 4 * luma[k] - luma[k - 1] - luma[k + 1] - luma[k - width] - luma[k + width];
        lsum += lap;
        lsq += lap * lap;
        count += 1;
      }
    }
    var mean = count ? lsum / count : 0;
    return {
      brightness: n ? sum / n : 0,
      glare: n ? white / n : 0,
      sharpness: count ? lsq / count - mean * mean : 0
    };
  }

  // The first check that fails, as a message key, or null when all pass.
  function verdict(m) {
    if (m.brightness < C.min_luma) return "too_dark";
    if (m.brightness > C.max_luma) return "too_bright";
    if (m.glare > C.max_glare) return "glare";
    if (m.sharpness < C.min_sharpness) return "blurry";
    return null;
  }

  function supported() {
    return !!(panel && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  var api = { measure: measure, verdict: verdict, supported: supported, last: null };
  window.verifierCapture = api;
  if (!panel) return;

  var video = document.getElementById("camera-video");
  var frameBox = document.getElementById("camera-frame");
  var checkBox = document.getElementById("camera-check");
  var autoBox = document.getElementById("camera-auto");
  var shootButton = document.getElementById("camera-shoot");
  var sample = document.createElement("canvas");
  var stream = null;
  var timer = null;
  var goodSince = null;
  var current = null;  // the open request: kind, onFile, onFail, opener

  // Where the frame sits on the video element, in CSS pixels.
  function placeFrame() {
    var ratio = guidance.frames[current.kind] || 1.585;
    var ew = video.clientWidth;
    var eh = video.clientHeight;
    var fw = ew * 0.88;
    var fh = fw / ratio;
    if (fh > eh * 0.8) {
      fh = eh * 0.8;
      fw = fh * ratio;
    }
    var rect = { x: (ew - fw) / 2, y: (eh - fh) / 2, w: fw, h: fh };
    frameBox.style.left = rect.x + "px";
    frameBox.style.top = rect.y + "px";
    frameBox.style.width = rect.w + "px";
    frameBox.style.height = rect.h + "px";
    return rect;
  }

  // The frame in the video's own pixels (the element shows it with object-fit: cover),
  // widened by `margin` of its size on each side and kept inside the picture.
  function videoRect(margin) {
    var rect = placeFrame();
    var vw = video.videoWidth;
    var vh = video.videoHeight;
    var scale = Math.max(video.clientWidth / vw, video.clientHeight / vh);
    var ox = (video.clientWidth - vw * scale) / 2;
    var oy = (video.clientHeight - vh * scale) / 2;
    var x = (rect.x - ox) / scale - rect.w / scale * margin;
    var y = (rect.y - oy) / scale - rect.h / scale * margin;
    var w = rect.w / scale * (1 + 2 * margin);
    var h = rect.h / scale * (1 + 2 * margin);
    x = Math.max(0, x);
    y = Math.max(0, y);
    return { x: x, y: y, w: Math.min(vw - x, w), h: Math.min(vh - y, h) };
  }

  function tick() {
    if (!current || video.readyState < 2 || !video.videoWidth) return;
    var r = videoRect(0);
    var scale = C.check_width / r.w;
    sample.width = Math.max(8, Math.round(r.w * scale));
    sample.height = Math.max(8, Math.round(r.h * scale));
    var ctx = sample.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, r.x, r.y, r.w, r.h, 0, 0, sample.width, sample.height);
    var m = measure(ctx.getImageData(0, 0, sample.width, sample.height).data,
                    sample.width, sample.height);
    var problem = verdict(m);
    api.last = { brightness: m.brightness, glare: m.glare, sharpness: m.sharpness,
                 problem: problem };
    panel.setAttribute("data-check", problem || "ok");
    frameBox.className = "camera-frame " + (problem ? "is-bad" : "is-ok");
    if (problem) {
      goodSince = null;
      checkBox.textContent = M[problem];
      return;
    }
    checkBox.textContent = autoBox.checked ? M.auto_soon : M.ready;
    if (!autoBox.checked) {
      goodSince = null;
      return;
    }
    var now = Date.now();
    if (goodSince === null) goodSince = now;
    if (now - goodSince >= C.hold_ms) shoot();
  }

  function stop() {
    if (timer) clearInterval(timer);
    timer = null;
    goodSince = null;
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    video.srcObject = null;
  }

  function close() {
    var request = current;
    stop();
    current = null;
    panel.hidden = true;
    panel.removeAttribute("data-check");
    document.body.classList.remove("camera-on");
    if (request && request.opener) request.opener.focus();
    return request;
  }

  function shoot() {
    if (!current || !video.videoWidth) return;
    var r = videoRect(0.06);
    var scale = Math.min(1, MAX_EDGE / Math.max(r.w, r.h));
    var out = document.createElement("canvas");
    out.width = Math.round(r.w * scale);
    out.height = Math.round(r.h * scale);
    out.getContext("2d").drawImage(video, r.x, r.y, r.w, r.h, 0, 0, out.width, out.height);
    var request = close();
    out.toBlob(function (blob) {
      var file = new File([blob], "camera.jpg", { type: "image/jpeg" });
      request.onFile(file, M.captured);
    }, "image/jpeg", 0.92);
  }

  // Open the camera for one slot: request = {kind, step, title, opener, onFile, onFail, onApp}.
  api.open = function (request) {
    if (current) close();
    current = request;
    document.getElementById("camera-step").textContent = request.step;
    document.getElementById("camera-title").textContent = request.title;
    document.getElementById("camera-hint").textContent = M["frame_" + request.kind] || "";
    checkBox.textContent = M.starting;
    panel.hidden = false;
    document.body.classList.add("camera-on");
    shootButton.focus();
    navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1920 }, height: { ideal: 1080 } },
      audio: false
    }).then(function (s) {
      if (current !== request) {
        s.getTracks().forEach(function (t) { t.stop(); });
        return;
      }
      stream = s;
      video.srcObject = s;
      var playing = video.play();
      if (playing && playing.catch) playing.catch(function () {});
      timer = setInterval(tick, C.interval_ms);
    }).catch(function () {
      if (current !== request) return;
      close();
      request.onFail(M.camera_refused);
    });
  };

  shootButton.addEventListener("click", shoot);
  document.getElementById("camera-cancel").addEventListener("click", close);
  document.getElementById("camera-app").addEventListener("click", function () {
    var request = close();
    if (request) request.onApp();
  });
  // A modal view: Escape closes it, Tab stays inside it.
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      close();
      return;
    }
    if (event.key !== "Tab") return;
    var stops = panel.querySelectorAll("input, button");
    var first = stops[0];
    var last = stops[stops.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      last.focus();
      event.preventDefault();
    } else if (!event.shiftKey && document.activeElement === last) {
      first.focus();
      event.preventDefault();
    }
  });
  window.addEventListener("resize", function () { if (current) placeFrame(); });
})();
