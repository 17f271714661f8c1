// Dispatch board: keeps the open alarms in sync over /ws/board/ and renders them as cards.
// Alarm text is untrusted: it is only ever set with textContent, never parsed as HTML.
//
// Built for a storm: messages are applied in batches, one per animation frame, and only the
// cards on the current page are in the document (a person's press in a band of its own above
// them); a card is redrawn only when it changed. The board says "No open alarms" only when a
// complete snapshot from the server said so and the socket is still up.
"use strict";

const OPEN = new Set(["triggered", "acknowledged"]);
const GAP_GRACE_MS = 2000; // events from several processes may arrive slightly out of order
const SILENCE_LIMIT_MS = 40000; // heartbeats come every 15 s; this long without one is a dead socket
const NO_RECONNECT = new Set([4401, 4403]);
const PAGE_SIZE = 100; // alarm cards on a page, below the people band
const PEOPLE_SHOWN = 200; // a person's presses shown at most (more are counted, never hidden silently)
const FOLDED_TITLES = 3; // titles a storm card names of the alarms folded into it
const FRAME_BUDGET_MS = 12; // messages applied per frame, at most this long; the rest wait a frame
const FLASH_MS = 6000; // how long a new card flashes once seen
const CLOSED_SHOWN_MS = 5000; // a closed alarm fades, then leaves the board
const SOURCE_NAMES = {
  yealink: "Desk phone",
  api: "API",
  alertmanager: "Alertmanager",
  pagerduty: "PagerDuty",
  metric: "Metric rule",
  schedule: "Schedule",
  heartbeat: "Heartbeat",
  storm: "Storm guard",
  outbox: "Outbox",
};
const ACTION_NAMES = { acknowledge: "Acknowledge", claim: "On my way", resolve: "Resolve", cancel: "Cancel" };

const alarms = new Map(); // id -> entry: {card, seq, closedAt, version, fresh, flashFrom, text}
let lastSeq = 0; // every event up to this number has been seen (or is in the snapshot)
let epoch = ""; // which Redis numbered them (its run id), as the last snapshot said
const seen = new Set(); // numbers above lastSeq already received
let gapTimer = null;
let socket = null;
let connected = false;
let lastMessageAt = Date.now();
let retryDelay = 1000;
let audio = null;
// The snapshot being received: null once the last part came. `complete`: a snapshot came
// whole on this socket, so what the board holds is what the server holds.
let loading = null;
let complete = false;
let everComplete = false;
let problem = ""; // what went wrong, shown in red until a snapshot came whole again
let liveDown = false; // the server said changes cannot reach boards now (until a heartbeat)
const inbox = []; // messages waiting for the next frame
let frameScheduled = false;
let dirty = true;
let pageIndex = 0;
const expanded = new Set(); // storm alarms whose folded alarms are shown
const arrivals = []; // new alarms since the last frame, announced once
let versions = 0;

const $ = (selector) => document.querySelector(selector);
const filters = { site: "", team: "", severity: "", search: "", group: "", ...JSON.parse(localStorage.getItem("board.filters") || "{}") };
let soundOn = localStorage.getItem("board.sound") === "on";
const phone = window.matchMedia("(max-width: 600px)").matches;

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/board/`);
  socket.onopen = () => {
    retryDelay = 1000;
    connected = true;
    markDirty();
  };
  socket.onmessage = (event) => {
    lastMessageAt = Date.now();
    inbox.push(event.data);
    scheduleFrame();
  };
  socket.onclose = (event) => {
    connected = false;
    liveDown = false;
    complete = false;
    loading = null;
    inbox.length = 0;
    if (NO_RECONNECT.has(event.code)) {
      problem = "Signed out — reload the page to sign in again.";
    } else {
      problem = "Connection lost — reconnecting…";
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    }
    markDirty();
  };
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function markDirty() {
  dirty = true;
  scheduleFrame();
}

// Frames stop in a hidden tab, where the board must still beep: a timer stands in there.
function scheduleFrame() {
  if (frameScheduled) return;
  frameScheduled = true;
  if (document.hidden) setTimeout(frame, 100);
  else requestAnimationFrame(frame);
}

function frame() {
  frameScheduled = false;
  const start = performance.now();
  while (inbox.length && performance.now() - start < FRAME_BUDGET_MS) {
    const text = inbox.shift();
    try {
      handle(JSON.parse(text));
    } catch (error) {
      // Whatever this message said is unknown now: the board reloads what is open.
      failed(`A message from the server could not be read (${error.message}).`);
    }
  }
  if (inbox.length) scheduleFrame();
  if (dirty) render();
  announce();
}

function failed(text) {
  problem = `${text} Loading the board again…`;
  complete = false;
  loading = null;
  inbox.length = 0;
  send({ action: "resync" });
  markDirty();
}

// No change reaches the board while this lasts: it reads the snapshot again at every heartbeat
// and says it may be missing alarms.
function liveLost(text) {
  liveDown = true;
  problem = `${text} Showing what the board last read, read again every few seconds.`;
  send({ action: "resync" });
  markDirty();
}

function handle(message) {
  if (message.type === "snapshot") return startSnapshot(message);
  if (message.type === "snapshot_part") return applyPart(message);
  if (message.type === "alarm") {
    noteSequence(message.seq);
    return applyCard(message.alarm, message.seq, true);
  }
  if (message.type === "heartbeat") {
    if (liveDown) {
      liveDown = false;
      problem = "";
      markDirty();
    }
    // Another Redis numbers the events now (restarted empty, or a replica that had not heard
    // the last numbers took over): numbers seen before mean nothing, so read everything again.
    if (message.epoch !== epoch) send({ action: "resync" });
    else if (message.seq > lastSeq && !seen.has(message.seq)) watchGap();
    return;
  }
  if (message.type === "outbox") return showOutbox(message.channels);
  if (message.type === "error") return message.live === false ? liveLost(message.error) : failed(message.error);
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

// A snapshot replaces what the board holds once its last part came: until then the cards
// already shown stay (marked stale), so a resync never empties the board for a moment.
function startSnapshot(message) {
  for (const entry of alarms.values()) entry.stale = true;
  seen.clear();
  clearTimeout(gapTimer);
  gapTimer = null;
  lastSeq = message.seq;
  epoch = message.epoch;
  loading = { total: message.total, received: 0, announce: everComplete };
  showOutbox(message.outbox);
  applyPart(message);
}

function applyPart(message) {
  if (!loading) return;
  for (const card of message.alarms) {
    applyCard(card, message.seq, loading.announce && !alarms.has(card.id));
    loading.received++;
  }
  if (message.done) {
    for (const [id, entry] of alarms) if (entry.stale) alarms.delete(id);
    loading = null;
    complete = everComplete = true;
    if (!liveDown) problem = "";
  }
  markDirty();
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
  if (previous && !previous.stale && previous.seq > seq) return;
  const open = OPEN.has(card.status);
  const isNew = (!previous || !OPEN.has(previous.card.status)) && open;
  const entry = {
    card,
    seq,
    version: ++versions,
    closedAt: open ? null : (previous && previous.closedAt) || Date.now(),
    fresh: (isNew && announce) || (previous ? previous.fresh : false),
    flashFrom: previous ? previous.flashFrom : null,
    text: searchText(card),
    lastMs: Date.parse(card.last_occurrence_at) || 0,
    createdMs: Date.parse(card.created_at) || 0,
  };
  alarms.set(card.id, entry);
  // An alarm that notifies nobody (folded into a storm, silenced) does not announce itself:
  // a storm beeps once, for its storm alarm.
  if (isNew && announce && card.status === "triggered" && !card.silenced_by) arrivals.push(entry);
  dirty = true;
}

function searchText(card) {
  const labels = card.labels.map(([name, value]) => `${name}=${value}`);
  return [card.title, card.site, card.room, card.person, card.device, card.source_name, ...labels]
    .join("\n")
    .toLowerCase();
}

// The filters as one test, its search words split once per render rather than once per alarm.
function matcher() {
  const words = filters.search.toLowerCase().split(/\s+/).filter(Boolean);
  return (entry) =>
    (!filters.site || String(entry.card.site_id) === filters.site) &&
    (!filters.team || String(entry.card.team_id) === filters.team) &&
    (!filters.severity || entry.card.severity === filters.severity) &&
    words.every((word) => entry.text.includes(word));
}

// A person's press first, the last pressed first; then by severity, the last to fire first.
function urgency(a, b) {
  const person = (a.card.person_press ? 0 : 1) - (b.card.person_press ? 0 : 1);
  return (
    person ||
    (!a.card.person_press && a.card.severity_rank - b.card.severity_rank) ||
    b.lastMs - a.lastMs ||
    b.createdMs - a.createdMs
  );
}

function groupOf(entry) {
  if (filters.group === "site") return entry.card.site || "No site";
  if (filters.group === "source") return SOURCE_NAMES[entry.card.source] || entry.card.source;
  return "";
}

function render() {
  dirty = false;
  const now = Date.now();
  for (const [id, entry] of alarms) {
    if (entry.closedAt && now - entry.closedAt > CLOSED_SHOWN_MS) alarms.delete(id);
  }
  const entries = [...alarms.values()].sort(urgency);
  // Alarms the storm guard folded wait under their storm alarm while it is on the board.
  const folded = new Map();
  for (const entry of entries) {
    const storm = entry.card.folded_into && alarms.get(entry.card.folded_into);
    if (storm && !storm.closedAt) {
      if (!folded.has(storm.card.id)) folded.set(storm.card.id, []);
      folded.get(storm.card.id).push(entry);
    }
  }
  const matches = matcher();
  const people = [];
  let others = [];
  let hiddenPeople = 0;
  for (const entry of entries) {
    if (folded.has(entry.card.folded_into)) continue;
    if (!matches(entry)) {
      if (entry.card.person_press && !entry.closedAt) hiddenPeople++;
      continue;
    }
    (entry.card.person_press ? people : others).push(entry);
  }
  if (filters.group) {
    const order = new Map();
    for (const entry of others) if (!order.has(groupOf(entry))) order.set(groupOf(entry), order.size);
    others.sort((a, b) => order.get(groupOf(a)) - order.get(groupOf(b)));
  }
  // An expanded storm shows its folded alarms right after it (those the filters let through).
  if (expanded.size) {
    others = others.flatMap((entry) =>
      expanded.has(entry.card.id) ? [entry, ...(folded.get(entry.card.id) || []).filter(matches)] : [entry],
    );
  }
  const pages = Math.max(1, Math.ceil(others.length / PAGE_SIZE));
  pageIndex = Math.min(pageIndex, pages - 1);
  const shown = others.slice(pageIndex * PAGE_SIZE, (pageIndex + 1) * PAGE_SIZE);
  const items = [];
  const sizes = new Map();
  if (filters.group) for (const entry of others) sizes.set(groupOf(entry), (sizes.get(groupOf(entry)) || 0) + 1);
  let group = null;
  for (const entry of shown) {
    if (filters.group && groupOf(entry) !== group) {
      group = groupOf(entry);
      items.push({ header: group, count: sizes.get(group) });
    }
    items.push(entry);
  }
  renderList($("#people"), people.slice(0, PEOPLE_SHOWN), folded);
  $("#people-band").hidden = people.length === 0;
  $("#people-more").hidden = people.length <= PEOPLE_SHOWN;
  $("#people-more").textContent = `${people.length - PEOPLE_SHOWN} more presses not shown: narrow the filter to see them.`;
  renderList($("#alarms"), items, folded);
  showPager(others.length, pages);
  const open = entries.filter((entry) => !entry.closedAt);
  showState(open.length, people.length + others.length, hiddenPeople);
  updateCounters(open);
}

function renderList(container, items, folded) {
  const existing = new Map([...container.children].map((element) => [element.dataset.key, element]));
  items.forEach((item, index) => {
    const key = item.header !== undefined ? `group:${item.header}` : item.card.id;
    let element = existing.get(key);
    existing.delete(key);
    if (!element) element = item.header !== undefined ? newHeader(key) : newCard(item.card.id);
    if (item.header !== undefined) element.textContent = `${item.header} · ${item.count}`;
    else fill(element, item, folded.get(item.card.id) || []);
    if (container.children[index] !== element) container.insertBefore(element, container.children[index] || null);
  });
  for (const element of existing.values()) element.remove();
}

function newHeader(key) {
  const element = document.createElement("h2");
  element.className = "group";
  element.dataset.key = key;
  return element;
}

function newCard(id) {
  const element = $("#card").content.firstElementChild.cloneNode(true);
  element.dataset.key = element.dataset.id = id;
  element.querySelector(".title").id = `title-${id}`;
  element.setAttribute("aria-labelledby", `title-${id}`);
  for (const button of element.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => act(element, button.dataset.action));
  }
  element.querySelector(".show-folded").addEventListener("click", () => {
    if (expanded.has(id)) expanded.delete(id);
    else expanded.add(id);
    markDirty();
  });
  element.querySelector(".deliveries").open = !phone;
  element.addEventListener("animationend", () => {
    const entry = alarms.get(id);
    if (entry) entry.fresh = false;
    element.classList.remove("new");
  });
  return element;
}

function act(element, action) {
  const note = element.querySelector(".note");
  const message = { action, alarm_id: element.dataset.id, note: note.value };
  const eta = element.querySelector(".eta");
  if (action === "claim" && eta && eta.value) message.eta_minutes = eta.value;
  send(message);
  note.value = "";
  if (eta) eta.value = "";
}

function fill(element, entry, foldedEntries) {
  const { card } = entry;
  if (element.version !== entry.version) redraw(element, entry);
  flash(element, entry);
  showFolded(element, card, foldedEntries);
}

function redraw(element, entry) {
  const { card } = entry;
  element.version = entry.version;
  element.className = `card sev-${card.severity} status-${card.status}`;
  element.classList.toggle("person", card.person_press);
  element.classList.toggle("closed", Boolean(entry.closedAt));
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
  const gap = element.querySelector(".nobody-on-call");
  gap.textContent = card.nobody_on_call || "";
  gap.hidden = !card.nobody_on_call || !OPEN.has(card.status);
  const lost = element.querySelector(".unreachable");
  const names = card.unreachable || [];
  lost.textContent = names.length ? `Cannot be reached: ${names.join(", ")} (every contact point failed)` : "";
  lost.hidden = !names.length || !OPEN.has(card.status);
  element.querySelector(".age").textContent = ageText(card);
  fillClaims(element.querySelector(".claims"), card);
  fillDeliveries(element.querySelector(".deliveries"), card);
  for (const button of element.querySelectorAll("button[data-action]")) {
    const action = button.dataset.action;
    button.hidden = !OPEN.has(card.status) || (action === "acknowledge" && card.status !== "triggered");
    button.setAttribute("aria-label", `${ACTION_NAMES[action]}: ${card.title}`);
  }
  const eta = element.querySelector(".eta");
  if (eta) eta.hidden = !OPEN.has(card.status);
  const note = element.querySelector(".note");
  note.hidden = !OPEN.has(card.status);
  note.setAttribute("aria-label", `Note for ${card.title}`);
}

// Who is on the way, each with a countdown to their ETA; one past it stands out (late).
function fillClaims(list, card) {
  const claims = OPEN.has(card.status) ? card.claims || [] : [];
  list.hidden = claims.length === 0;
  list.replaceChildren(
    ...claims.map((claim) => {
      const item = document.createElement("li");
      item.textContent = claimText(claim);
      item.classList.toggle("late", Boolean(claim.eta_at) && Date.parse(claim.eta_at) <= Date.now());
      return item;
    }),
  );
}

function claimText(claim) {
  if (!claim.eta_at) return `${claim.name} is on the way`;
  const left = Math.round((Date.parse(claim.eta_at) - Date.now()) / 1000);
  const at = clockText(claim.eta_at);
  if (left > 0) return `${claim.name} is on the way · ETA ${at}, in ${spoken(left)}`;
  return `${claim.name} is late · ETA ${at} passed ${spoken(-left)} ago`;
}

// A new card flashes for FLASH_MS from the moment it is first on screen, and never again:
// one drawn anew (a filter change, another page) picks up where its flash was, or has none.
function flash(element, entry) {
  if (!entry.fresh || document.hidden) return element.classList.remove("new");
  if (entry.flashFrom === null) entry.flashFrom = Date.now();
  const elapsed = Date.now() - entry.flashFrom;
  if (elapsed >= FLASH_MS) {
    entry.fresh = false;
    return element.classList.remove("new");
  }
  if (!element.classList.contains("new")) {
    element.style.animationDelay = `-${elapsed}ms`;
    element.classList.add("new");
  }
}

function showFolded(element, card, foldedEntries) {
  const box = element.querySelector(".folded");
  box.hidden = foldedEntries.length === 0;
  if (box.hidden) return;
  const open = foldedEntries.filter((entry) => !entry.closedAt);
  const titles = open.slice(0, FOLDED_TITLES).map((entry) => entry.card.title);
  const more = open.length > FOLDED_TITLES ? ` and ${open.length - FOLDED_TITLES} more` : "";
  const text = `${open.length} ${open.length === 1 ? "alarm" : "alarms"} folded in: ${titles.join(" · ")}${more}`;
  if (box.firstElementChild.textContent !== text) box.firstElementChild.textContent = text;
  const button = box.querySelector(".show-folded");
  const label = expanded.has(card.id) ? "Fold them" : `Show all ${open.length}`;
  if (button.textContent !== label) button.textContent = label;
  button.setAttribute("aria-expanded", String(expanded.has(card.id)));
}

function fillDeliveries(box, card) {
  const counts = {};
  for (const d of card.deliveries) counts[d.status] = (counts[d.status] || 0) + 1;
  const total = card.deliveries.length + card.deliveries_before;
  box.hidden = total === 0;
  box.querySelector("summary").textContent =
    `${total} ${total === 1 ? "message" : "messages"}: ` +
    Object.entries(counts)
      .map(([status, n]) => `${n} ${status}`)
      .join(", ");
  box.querySelector("ul").replaceChildren(
    ...card.deliveries.map((d) => {
      const item = document.createElement("li");
      item.className = d.status;
      item.textContent = `${d.target} · ${d.method} · ${d.status}${d.error ? ` (${d.error})` : ""} · ${d.event === "notify" ? `step ${d.step}` : d.event}`;
      return item;
    }),
  );
}

function showPager(count, pages) {
  for (const pager of document.querySelectorAll(".pager")) {
    pager.hidden = pages < 2;
    const first = pageIndex * PAGE_SIZE + 1;
    pager.querySelector(".range").textContent = `${first}–${Math.min(count, first + PAGE_SIZE - 1)} of ${count}`;
    pager.querySelector(".previous").disabled = pageIndex === 0;
    pager.querySelector(".next").disabled = pageIndex >= pages - 1;
  }
}

// What the board can honestly say: loading (and how far), a problem (in red, with what it
// knows), no open alarms (only after a complete snapshot), or that the filter hides them.
function showState(open, shown, hiddenPeople) {
  const known = `${open} open ${open === 1 ? "alarm" : "alarms"} known`;
  const banner = $("#banner");
  banner.hidden = !problem;
  banner.textContent = problem ? `${problem}${sure() ? "" : ` The board may be missing alarms: ${known}.`}` : "";
  const status = $("#loading");
  status.hidden = !loading;
  if (loading) status.textContent = `Loading open alarms: ${loading.received} of ${loading.total}…`;
  $("#empty").hidden = !(sure() && open === 0);
  const filtered = $("#filtered");
  filtered.hidden = !(open > 0 && shown === 0);
  filtered.textContent = `No alarm matches your filter (${known}).`;
  const notice = $("#hidden-people");
  notice.hidden = hiddenPeople === 0;
  notice.querySelector("span").textContent =
    `${hiddenPeople} ${hiddenPeople === 1 ? "emergency" : "emergencies"} from a person hidden by your filter.`;
  document.body.dataset.state = loading ? "loading" : sure() ? "complete" : "incomplete";
}

// Whether what the board shows is what the server holds: a whole snapshot on a live socket,
// and changes reaching it since.
function sure() {
  return complete && connected && !loading && !liveDown;
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

function updateCounters(open) {
  const counts = {};
  for (const entry of open) counts[entry.card.severity] = (counts[entry.card.severity] || 0) + 1;
  for (const counter of document.querySelectorAll(".counter")) {
    // Until a snapshot came whole the board cannot count: it says what it knows so far.
    const n = counts[counter.dataset.severity] || 0;
    counter.querySelector("b").textContent = sure() ? n : `${n}+`;
  }
}

// New alarms since the last frame: one line for a screen reader, one beep, a few notifications.
function announce() {
  if (!arrivals.length) return;
  const news = arrivals.splice(0).sort(urgency);
  const first = news[0].card;
  const where = [first.site, first.room, first.person].filter(Boolean).join(", ");
  $("#announce").textContent =
    news.length === 1
      ? `New ${first.severity} alarm: ${first.title}${where ? `, ${where}` : ""}`
      : `${news.length} new alarms; the most urgent: ${first.title}${where ? `, ${where}` : ""}`;
  if (soundOn) beep();
  if (document.hidden && "Notification" in window && Notification.permission === "granted") {
    for (const { card } of news.slice(0, 3)) {
      new Notification(`${card.severity.toUpperCase()}: ${card.title}`, {
        body: [card.site, card.room, card.person].filter(Boolean).join(" · "),
        tag: card.id,
      });
    }
    if (news.length > 3) new Notification(`${news.length - 3} more new alarms`, { tag: "more" });
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

function saveFilters() {
  localStorage.setItem("board.filters", JSON.stringify(filters));
  pageIndex = 0;
  markDirty();
  showOnCall();
}

function setupControls() {
  for (const key of ["site", "team", "severity", "group"]) {
    const select = $(`#filter-${key}`);
    if (!select) continue;
    select.value = filters[key] || "";
    select.addEventListener("change", () => {
      filters[key] = select.value;
      saveFilters();
    });
  }
  const search = $("#search");
  search.value = filters.search;
  search.addEventListener("input", () => {
    filters.search = search.value.trim();
    saveFilters();
  });
  $("#show-hidden").addEventListener("click", () => {
    Object.assign(filters, { site: "", team: "", severity: "", search: "" });
    for (const key of ["site", "team", "severity"]) if ($(`#filter-${key}`)) $(`#filter-${key}`).value = "";
    search.value = "";
    saveFilters();
  });
  for (const pager of document.querySelectorAll(".pager")) {
    pager.querySelector(".previous").addEventListener("click", () => turnPage(-1));
    pager.querySelector(".next").addEventListener("click", () => turnPage(1));
  }
  $("#controls").open = !phone;
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
  document.addEventListener("keydown", onKey);
}

function turnPage(step) {
  pageIndex = Math.max(0, pageIndex + step);
  markDirty();
  window.scrollTo(0, 0);
}

// Keys: / search, j and k the next and previous card, a acknowledge the card in focus.
function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest("input, select, textarea")) return;
  const cards = [...document.querySelectorAll(".card")];
  const current = event.target.closest ? event.target.closest(".card") : null;
  if (event.key === "/") {
    event.preventDefault();
    $("#controls").open = true;
    $("#search").focus();
  } else if (event.key === "j" || event.key === "k") {
    const index = cards.indexOf(current);
    const next = cards[event.key === "j" ? index + 1 : Math.max(0, index - 1)] || cards[0];
    if (next) next.focus();
  } else if (event.key === "a" && current) {
    const button = current.querySelector("button[data-action=acknowledge]");
    if (button && !button.hidden) act(current, "acknowledge");
  }
}

// Once a second: the ages and countdowns of the cards on screen, the end of their flash, and
// the closed alarms that are due to leave. Nothing else is redrawn.
function tick() {
  const now = Date.now();
  for (const element of document.querySelectorAll(".card")) {
    const entry = alarms.get(element.dataset.id);
    if (!entry) continue;
    element.querySelector(".age").textContent = ageText(entry.card);
    element.querySelector(".escalation").textContent = escalationText(entry.card);
    if (entry.card.claims && entry.card.claims.length) fillClaims(element.querySelector(".claims"), entry.card);
    if (entry.fresh) flash(element, entry);
    if (entry.closedAt && now - entry.closedAt > CLOSED_SHOWN_MS) dirty = true;
  }
  if (dirty) scheduleFrame();
  if (now - lastMessageAt > SILENCE_LIMIT_MS && socket && socket.readyState === WebSocket.OPEN) socket.close();
}

// Who is on call now for the teams this dispatcher follows (their own teams, or the one the
// team filter picks; every team when neither), and when it next changes. Asked every minute.
const ON_CALL_MS = 60000;
const followedTeams = ($("#on-call")?.dataset.followed || "").split(",").filter(Boolean).map(Number);

async function showOnCall() {
  const list = $("#on-call-list");
  if (!list) return;
  let answers;
  try {
    const response = await fetch("/v1/oncall", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    answers = (await response.json()).on_call;
  } catch (error) {
    list.replaceChildren(item(`Who is on call could not be read (${error.message}); trying again in a minute.`, "gap"));
    return;
  }
  const wanted = filters.team ? [Number(filters.team)] : followedTeams;
  const shown = answers.filter((answer) => !wanted.length || wanted.includes(answer.team_id));
  list.replaceChildren(...(shown.length ? shown.map(onCallItem) : [item("No schedule for these teams.")]));
}

function onCallItem(answer) {
  const who = answer.people.map((person) => person.name).join(", ");
  const next = answer.changes_at ? ` · next hand-off ${clockText(answer.changes_at)}` : "";
  const team = answer.team && answer.team !== answer.name ? `${answer.team} · ` : "";
  const element = item(`${team}${answer.name}: ${who || "nobody on call"}${next}`, answer.nobody ? "gap" : "");
  element.dataset.schedule = answer.id;
  return element;
}

function item(text, className = "") {
  const element = document.createElement("li");
  element.textContent = text;
  if (className) element.className = className;
  return element;
}

// "19:00" today, "Thu 07:00" later: the browser's own clock and zone.
function clockText(iso) {
  const at = new Date(iso);
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return at.toDateString() === new Date().toDateString() ? time : `${at.toLocaleDateString([], { weekday: "short" })} ${time}`;
}

setupControls();
connect();
render();
setInterval(tick, 1000);
showOnCall();
setInterval(showOnCall, ON_CALL_MS);
