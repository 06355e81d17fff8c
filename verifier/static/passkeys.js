/* Passkeys (WebAuthn): add one on the two-factor page, use one at the second sign-in step.
   The server sends the options as JSON with binary fields in base64url; the browser's answer
   goes back the same way. Errors are shown beside the button. */
(function () {
  "use strict";

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function post(box, url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "X-CSRFToken": box.getAttribute("data-csrf"),
        "Content-Type": "application/json",
        "Accept": "application/json"
      },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        return { ok: false, body: { error: "Your session ended. Sign in again." } };
      }
      return response.json().then(function (json) { return { ok: response.ok, body: json }; });
    });
  }

  function showError(box, message) {
    var slot = box.querySelector("[data-passkey-error]");
    slot.textContent = message;
    slot.hidden = false;
  }

  function credentialJson(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      if (response.getTransports) { out.response.transports = response.getTransports(); }
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      if (response.userHandle) { out.response.userHandle = toText(response.userHandle); }
    }
    if (credential.authenticatorAttachment) { out.authenticatorAttachment = credential.authenticatorAttachment; }
    return out;
  }

  function listOf(items) {
    return (items || []).map(function (item) {
      var copy = Object.assign({}, item);
      copy.id = toBytes(item.id);
      return copy;
    });
  }

  function ceremonyError(error) {
    if (error && error.name === "NotAllowedError") { return "The passkey request was cancelled or timed out. Try again."; }
    if (error && error.name === "InvalidStateError") { return "This passkey is registered already."; }
    if (error && error.name === "SecurityError") { return "Passkeys need this page served over HTTPS (or on localhost)."; }
    return "The passkey could not be used. Try again.";
  }

  function run(box, create) {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showError(box, "This browser does not support passkeys.");
      return;
    }
    var button = box.querySelector("[data-passkey-start]");
    var nameInput = box.querySelector("[data-passkey-name]");
    if (create && nameInput && !nameInput.value.trim()) {
      showError(box, "Give the passkey a name first, such as 'Work laptop'.");
      nameInput.focus();
      return;
    }
    button.disabled = true;
    post(box, box.getAttribute("data-options-url")).then(function (result) {
      if (!result.ok) { throw { shown: result.body.error, redirect: result.body.redirect }; }
      var options = result.body;
      options.challenge = toBytes(options.challenge);
      if (create) {
        options.user.id = toBytes(options.user.id);
        options.excludeCredentials = listOf(options.excludeCredentials);
        return navigator.credentials.create({ publicKey: options });
      }
      options.allowCredentials = listOf(options.allowCredentials);
      return navigator.credentials.get({ publicKey: options });
    }).then(function (credential) {
      var body = create ? { name: nameInput.value, credential: credentialJson(credential) } : credentialJson(credential);
      return post(box, box.getAttribute("data-verify-url"), body);
    }).then(function (result) {
      if (!result.ok) { throw { shown: result.body.error, redirect: result.body.redirect }; }
      window.location.assign(result.body.redirect);
    }).catch(function (error) {
      button.disabled = false;
      if (error && error.redirect) { window.location.assign(error.redirect); return; }
      showError(box, (error && error.shown) || ceremonyError(error));
    });
  }

  document.querySelectorAll("[data-passkey-register]").forEach(function (box) {
    box.querySelector("[data-passkey-start]").addEventListener("click", function () { run(box, true); });
  });
  document.querySelectorAll("[data-passkey-login]").forEach(function (box) {
    box.querySelector("[data-passkey-start]").addEventListener("click", function () { run(box, false); });
  });
})();
