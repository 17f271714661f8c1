// The responder page's service worker: shows each alarm pushed to this device, and its
// buttons act through the recipient's own ACK link (a POST; the link is the credential).
"use strict";

self.addEventListener("push", (event) => {
  const page = event.data ? event.data.json() : { title: "Alarm", body: "" };
  const urgent = page.severity === "critical" || page.severity === "high";
  const options = {
    body: page.body,
    tag: page.tag,
    renotify: true,
    requireInteraction: urgent,
    data: { url: page.url },
    actions: page.page && page.url
      ? [{ action: "acknowledge", title: "Acknowledge" }, { action: "claim", title: "On my way" }]
      : [],
  };
  event.waitUntil(self.registration.showNotification(page.title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data && event.notification.data.url;
  if (event.action && url) {
    event.waitUntil(fetch(`${url}/${event.action}`, { method: "POST", credentials: "omit" }));
    return;
  }
  event.waitUntil(self.clients.openWindow(url || "/me/"));
});
