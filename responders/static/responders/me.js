// The responder page: register the service worker and subscribe this device to Web Push.
"use strict";

function keyBytes(base64url) {
  const padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

async function subscribe(box, state) {
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    state.textContent = "Notifications are blocked for this page: allow them in the browser's settings.";
    return;
  }
  const registration = await navigator.serviceWorker.ready;
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: keyBytes(box.dataset.key),
  });
  const answer = await fetch(box.dataset.subscribe, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": box.dataset.csrf },
    body: JSON.stringify(subscription.toJSON()),
    credentials: "same-origin",
  });
  state.textContent = answer.ok ? "This device will get your alarms." : `Not subscribed: ${(await answer.json()).error}`;
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("push");
  if (!box || !("serviceWorker" in navigator) || !("PushManager" in window)) return;
  box.hidden = false;
  const state = document.getElementById("push-state");
  navigator.serviceWorker.register(box.dataset.worker, { scope: "/me/" }).then(
    () => { state.textContent = "Ready."; },
    (error) => { state.textContent = `This browser cannot take alarms here: ${error.message}`; },
  );
  document.getElementById("push-on").addEventListener("click", () => {
    subscribe(box, state).catch((error) => { state.textContent = `Not subscribed: ${error.message}`; });
  });
});
