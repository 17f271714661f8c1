// Dispatch board: keeps the open alarms in sync over /ws/board/ and renders them as cards.
// Alarm text is untrusted: it is only ever set with textContent, never parsed as HTML.
"use strict";

const OPEN = new Set(["triggered", "acknowledged"]);
const GAP_GRACE_MS = 2000; // events from several processes may arrive slightly out of order
const SILENCE_LIMIT_MS = 40000; // heartbeats come every 15 s; this long without one is a dead socket
const NO_RECONNECT = new Set([4401, 4403]);
const SOURCE_NAMES = {
  yealink: "Desk phone",
  api: "API",
  alertmanager: "Alertmanager",
  pagerduty: "PagerDuty",
  metric: "Metric rule",
  schedule: "Schedule",
  heartbeat: "Heartbeat",
};

const alarms = new Map(); // id -> {card, seq, closedAt}
let lastSeq = 0; // every event up to this number has been seen (or is in the snapshot)
const seen = new Set(); // numbers above lastSeq already received
let gapTimer = null;
let socket = null;
let lastMessageAt = Date.now();
let retryDelay = 1000;
let audio = null;

const $ = (selector) => document.querySelector(selector);
const filters = JSON.parse(localStorage.getItem("board.filters") || "{}");
let soundOn = localStorage.getItem("board.sound") === "on";

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/board/`);
  socket.onopen = () => {
    retryDelay = 1000;
    $("#banner").hidden = true;
  };
  socket.onmessage = (event) => {
    lastMessageAt = Date.now();
    handle(JSON.parse(event.data));
  };
  socket.onclose = (event) => {
    if (NO_RECONNECT.has(event.code)) {
      $("#banner").textContent = "Signed out — reload the page to sign in again.";
      $("#banner").hidden = false;
      return;
    }
    $("#banner").textContent = "Connection lost — reconnecting…";
    $("#banner").hidden = false;
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function handle(message) {
  if (message.type === "snapshot") return applySnapshot(message);
  if (message.type === "alarm") {
    noteSequence(message.seq);
    return applyCard(message.alarm, message.seq, true);
  }
  if (message.type === "heartbeat") {
    if (message.seq > lastSeq && !seen.has(message.seq)) watchGap();
    return;
  }
  if (message.type === "outbox") return showOutbox(message.channels);
  if (message.type === "result" && !message.ok) toast(message.error);
}

// Channels that keep a remote record (an upstream broker, a ticket system) and have messages
// waiting: a dispatcher must know that the central registry does not see these alarms yet.
function showOutbox(channels) {
  const waiting = (channels || []).filter((channel) => channel.failing_since);
  const banner = $("#outbox");
  banner.hidden = waiting.length === 0;
  banner.textContent = waiting
    .map((channel) => {
      const since = new Date(channel.failing_since).toLocaleTimeString();
      const plural = channel.waiting === 1 ? "message" : "messages";
      return `Not reaching ${channel.channel}: ${channel.waiting} ${plural} waiting since ${since}, sent as soon as it answers`;
    })
    .join(" · ");
}

function applySnapshot(message) {
  const known = new Set(alarms.keys());
  alarms.clear();
  seen.clear();
  clearTimeout(gapTimer);
  gapTimer = null;
  lastSeq = message.seq;
  for (const card of message.alarms) applyCard(card, message.seq, !known.has(card.id) && known.size > 0);
  showOutbox(message.outbox);
  render();
}

// Numbers arrive mostly in order; a hole that stays open past the grace means a lost event.
function noteSequence(seq) {
  if (seq <= lastSeq) return;
  seen.add(seq);
  while (seen.has(lastSeq + 1)) seen.delete(++lastSeq);
  if (seen.size) watchGap();
  else {
    clearTimeout(gapTimer);
    gapTimer = null;
  }
}

function watchGap() {
  if (gapTimer) return;
  gapTimer = setTimeout(() => {
    gapTimer = null;
    send({ action: "resync" });
  }, GAP_GRACE_MS);
}

function applyCard(card, seq, announce) {
  const previous = alarms.get(card.id);
  // Of several events for one alarm, the highest number carries its latest state.
  if (previous && previous.seq > seq) return;
  const isNew = !previous && OPEN.has(card.status);
  alarms.set(card.id, { card, seq, closedAt: OPEN.has(card.status) ? null : Date.now(), fresh: isNew && announce });
  // An alarm that notifies nobody (folded into a storm, silenced) does not beep either: a storm
  // beeps once, for its storm alarm.
  if (isNew && announce && card.status === "triggered" && !card.silenced_by) alert(card);
  render();
}

function visible(card) {
  if (filters.site && String(card.site_id) !== filters.site) return false;
  if (filters.severity && card.severity !== filters.severity) return false;
  return true;
}

function render() {
  const now = Date.now();
  for (const [id, entry] of alarms) {
    if (entry.closedAt && now - entry.closedAt > 5000) alarms.delete(id);
  }
  // Within a severity, what fired last comes first: an alarm pressed again rises to the top.
  const entries = [...alarms.values()].sort(
    (a, b) =>
      a.card.severity_rank - b.card.severity_rank ||
      Date.parse(b.card.last_occurrence_at) - Date.parse(a.card.last_occurrence_at) ||
      Date.parse(b.card.created_at) - Date.parse(a.card.created_at),
  );
  const container = $("#alarms");
  const wanted = entries.filter((entry) => visible(entry.card));
  const existing = new Map([...container.children].map((el) => [el.dataset.id, el]));
  wanted.forEach((entry, index) => {
    let element = existing.get(entry.card.id);
    if (!element) element = newCard(entry.card.id);
    existing.delete(entry.card.id);
    fill(element, entry);
    if (container.children[index] !== element) container.insertBefore(element, container.children[index] || null);
  });
  for (const element of existing.values()) element.remove();
  $("#empty").hidden = wanted.length > 0;
  updateCounters(entries);
}

function newCard(id) {
  const element = $("#card").content.firstElementChild.cloneNode(true);
  element.dataset.id = id;
  for (const button of element.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => {
      const note = element.querySelector(".note").value;
      send({ action: button.dataset.action, alarm_id: id, note });
      element.querySelector(".note").value = "";
    });
  }
  return element;
}

function fill(element, entry) {
  const { card } = entry;
  element.className = `card sev-${card.severity} status-${card.status}`;
  if (entry.fresh) element.classList.add("new");
  if (entry.closedAt) element.classList.add("closed");
  element.querySelector(".severity").textContent = card.severity;
  element.querySelector(".status").textContent = card.status;
  const count = element.querySelector(".count");
  count.hidden = card.occurrences < 2;
  count.textContent = `${card.occurrences}×`;
  count.title = `Fired ${card.occurrences} times`;
  element.querySelector(".title").textContent = card.title;
  element.querySelector(".where").textContent = [card.site, card.room, card.person].filter(Boolean).join(" · ");
  element.querySelector(".origin").textContent = [SOURCE_NAMES[card.source] || card.source, card.device, card.source_name]
    .filter(Boolean)
    .join(" · ");
  const reopened = element.querySelector(".reopened");
  reopened.hidden = !card.reopen_count;
  reopened.textContent = reopenedText(card);
  const labels = element.querySelector(".labels");
  labels.replaceChildren(
    ...card.labels.map(([name, value]) => {
      const item = document.createElement("li");
      item.textContent = `${name}=${value}`;
      return item;
    }),
  );
  labels.hidden = card.labels.length === 0;
  element.querySelector(".message").textContent = card.message;
  element.querySelector(".escalation").textContent = escalationText(card);
  element.querySelector(".age").textContent = ageText(card);
  const list = element.querySelector(".deliveries");
  list.replaceChildren(
    ...card.deliveries.map((d) => {
      const item = document.createElement("li");
      item.className = d.status;
      item.textContent = `${d.target} · ${d.method} · ${d.status}${d.error ? ` (${d.error})` : ""} · ${d.event === "notify" ? `step ${d.step}` : d.event}`;
      return item;
    }),
  );
  for (const button of element.querySelectorAll("button[data-action]")) {
    const action = button.dataset.action;
    button.hidden = !OPEN.has(card.status) || (action === "acknowledge" && card.status !== "triggered");
  }
  element.querySelector(".note").hidden = !OPEN.has(card.status);
}

function escalationText(card) {
  if (card.status === "acknowledged") return `Acknowledged by ${card.acknowledged_by}`;
  if (!OPEN.has(card.status)) return `${card.status} by ${card.resolved_by}`;
  if (card.silenced_by) return `Silenced by ${card.silenced_by}`;
  if (!card.policy) return "No escalation policy";
  const step = card.step > 0 ? `Step ${card.step} of ${card.steps}, round ${card.round}` : "Starting";
  if (!card.next_escalation_at) return `${step} · escalation ended`;
  const left = Math.max(0, Math.round((Date.parse(card.next_escalation_at) - Date.now()) / 1000));
  return `${step} · next step in ${duration(left)}`;
}

function reopenedText(card) {
  if (!card.reopen_count) return "";
  const times = `Reopened ${card.reopen_count}×`;
  if (card.reopened_after_seconds === null) return times;
  return `${times} — fired again ${spoken(card.reopened_after_seconds)} after it was resolved`;
}

// "40 s", "3 min 20 s", "2 h 5 min": how long, said in words.
function spoken(seconds) {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return seconds % 60 ? `${minutes} min ${seconds % 60} s` : `${minutes} min`;
  return minutes % 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes / 60} h`;
}

// Age since it first fired; for an alarm that fired again, also since it last did.
function ageText(card) {
  const first = age(card.created_at);
  if (card.occurrences < 2 && !card.reopen_count) return first;
  return `${first} · last ${age(card.last_occurrence_at)} ago`;
}

function duration(seconds) {
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return m >= 60 ? `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m` : `${m}:${s}`;
}

function age(since) {
  return duration(Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000)));
}

function updateCounters(entries) {
  for (const counter of document.querySelectorAll(".counter")) {
    const severity = counter.dataset.severity;
    counter.querySelector("b").textContent = entries.filter(
      (e) => !e.closedAt && e.card.severity === severity,
    ).length;
  }
}

function alert(card) {
  if (soundOn) beep();
  if (document.hidden && "Notification" in window && Notification.permission === "granted") {
    new Notification(`${card.severity.toUpperCase()}: ${card.title}`, {
      body: [card.site, card.room, card.person].filter(Boolean).join(" · "),
      tag: card.id,
    });
  }
}

function beep() {
  if (!audio) audio = new AudioContext();
  if (audio.state === "suspended") audio.resume();
  for (let i = 0; i < 3; i++) {
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.value = 0.2;
    oscillator.connect(gain).connect(audio.destination);
    const start = audio.currentTime + i * 0.35;
    oscillator.start(start);
    oscillator.stop(start + 0.2);
  }
}

function toast(text) {
  const element = $("#toast");
  element.textContent = text;
  element.hidden = false;
  setTimeout(() => (element.hidden = true), 5000);
}

function setupControls() {
  const site = $("#filter-site");
  const severity = $("#filter-severity");
  site.value = filters.site || "";
  severity.value = filters.severity || "";
  for (const [key, select] of [["site", site], ["severity", severity]]) {
    select.addEventListener("change", () => {
      filters[key] = select.value;
      localStorage.setItem("board.filters", JSON.stringify(filters));
      render();
    });
  }
  const sound = $("#sound");
  const showSound = () => {
    sound.textContent = soundOn ? "Sound on" : "Sound off";
    sound.setAttribute("aria-pressed", String(soundOn));
  };
  showSound();
  sound.addEventListener("click", () => {
    soundOn = !soundOn;
    localStorage.setItem("board.sound", soundOn ? "on" : "off");
    showSound();
    if (soundOn) beep();
    if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
  });
  // Browsers start audio only after a user gesture: any click unlocks it.
  document.addEventListener("click", () => audio && audio.state === "suspended" && audio.resume());
}

setupControls();
connect();
setInterval(() => {
  for (const element of document.querySelectorAll(".card")) {
    const entry = alarms.get(element.dataset.id);
    if (!entry) continue;
    element.querySelector(".age").textContent = ageText(entry.card);
    element.querySelector(".escalation").textContent = escalationText(entry.card);
  }
  if (Date.now() - lastMessageAt > SILENCE_LIMIT_MS && socket && socket.readyState === WebSocket.OPEN) {
    socket.close();
  }
  render();
}, 1000);
