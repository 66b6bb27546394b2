// The console's script: polls the stores and each store's held locks once a second, counts
// the time left down between polls, reads the event feed as a stream, and force-releases a
// lock after asking for the admin token and a confirmation. Everything goes through the
// sidecar's public /dlock/v1/ calls; the API token, once given, is sent on each of them and
// kept in this page's memory only.
"use strict";

const REFRESH_MS = 1000;
const FEED_LINES = 200;

const state = {
  apiToken: null,     // DAPR_API_TOKEN, once the sidecar asked for it
  adminToken: "",     // DLOCK_ADMIN_TOKEN, once given for a force release
  forceReleaseEnabled: false, // whether the sidecar has an admin token at all
  rows: new Map(),    // "store\u0000resource" -> { tr, expiresAt }
};

const $ = (id) => document.getElementById(id);

class Unauthorized extends Error {}

/** A data call with the API token; the JSON answer, or an Error with the sidecar's message. */
async function call(path, options = {}) {
  const headers = Object.assign({ "content-type": "application/json" }, options.headers || {});
  if (state.apiToken !== null) headers["dapr-api-token"] = state.apiToken;
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  if (response.status === 401) throw new Unauthorized("invalid api token");
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch (e) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.message) || text || ("HTTP " + response.status));
  }
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function timeLeft(ms) {
  if (ms <= 0) return "expired";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " m " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
  return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " m";
}

function setStatus(text, down) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("down", !!down);
}

// --- Stores and locks ---------------------------------------------------------------

function renderStores(stores) {
  const body = $("stores").tBodies[0];
  body.replaceChildren(...stores.map((s) => {
    const tr = el("tr");
    tr.dataset.store = s.name;
    tr.append(el("td", s.name), el("td", s.type),
      el("td", s.servers.length ? s.servers.join(", ") : "in process"),
      el("td", s.capabilities.join(", ")));
    const health = s.healthy
      ? el("td", "ok", "health ok")
      : el("td", "failing since " + clock(Number(s.failingSinceUnixMs)) + " (for " +
          timeLeft(Number(s.failingForMs)) + "): " + s.lastError, "health failing");
    tr.append(health);
    return tr;
  }));
}

function lockRow(store, lock) {
  const tr = el("tr");
  tr.dataset.store = store;
  tr.dataset.resource = lock.resourceId;
  const button = el("button", "Force release", "force");
  button.type = "button";
  if (state.forceReleaseEnabled) {
    button.addEventListener("click", () => askForceRelease(tr));
  } else {
    // Without an admin token the sidecar refuses every force release: say so, ask nothing.
    button.disabled = true;
    button.title = "Force release needs DLOCK_ADMIN_TOKEN set for this sidecar";
  }
  const actions = el("td", null, "actions");
  actions.append(button);
  tr.append(el("td", store), el("td", lock.resourceId, "resource"), el("td", "", "owner"),
    el("td", "", "left"), el("td", "", "token num"), el("td", "", "waiting num"),
    el("td", "", "mode"), actions);
  return tr;
}

/** Puts one line per holder in a cell. */
function lines(cell, texts) {
  cell.replaceChildren(...texts.map((text) => el("div", text)));
}

/** A lock's holders: every holder of a shared lock, the one of an exclusive lock. */
function holdersOf(lock) {
  if (Array.isArray(lock.holders) && lock.holders.length > 0) return lock.holders;
  return [{ lockOwner: lock.lockOwner, expiresInMs: lock.expiresInMs,
    fencingToken: lock.fencingToken, holds: 1 }];
}

function modeOf(lock) {
  if (lock.mode !== "SHARED") return "exclusive";
  return lock.limit > 0 ? "shared, limit " + lock.limit : "shared";
}

/** Updates the lock table in place: rows are kept by store and resource id, so a row a
 *  reader (or a click) is on stays the same element while its lock is held. */
function renderLocks(listed, now) {
  const body = $("locks").tBodies[0];
  const seen = new Set();
  for (const { store, locks } of listed) {
    for (const lock of locks) {
      const key = store + "\u0000" + lock.resourceId;
      seen.add(key);
      let row = state.rows.get(key);
      if (!row) {
        row = { tr: lockRow(store, lock) };
        state.rows.set(key, row);
      }
      const holders = holdersOf(lock);
      row.expiresAt = holders.map((h) => now + Number(h.expiresInMs));
      const cells = row.tr.cells;
      lines(cells[2], holders.map((h) => h.lockOwner + (h.holds > 1 ? " \u00d7" + h.holds : "")));
      lines(cells[4], holders.map((h) => (h.fencingToken === "0" ? "–" : h.fencingToken)));
      cells[5].textContent = String(lock.waitingHere);
      cells[6].textContent = modeOf(lock);
      body.append(row.tr); // moves it into sorted order
    }
  }
  for (const [key, row] of state.rows) {
    if (!seen.has(key)) {
      row.tr.remove();
      state.rows.delete(key);
    }
  }
  tick();
}

/** The countdown between polls. */
function tick() {
  const now = performance.now();
  for (const row of state.rows.values()) {
    lines(row.tr.cells[3], row.expiresAt.map((at) => timeLeft(at - now)));
  }
}

async function refresh() {
  const prefix = $("prefix").value;
  const answer = await call("/dlock/v1/stores");
  $("app").textContent = answer.appId ? "app id " + answer.appId : "";
  state.forceReleaseEnabled = answer.forceReleaseEnabled === true;
  const listing = answer.stores.filter((s) => s.capabilities.includes("LISTING"));
  const lists = await Promise.all(listing.map(async (s) => {
    try {
      const list = await call("/dlock/v1/list/" + encodeURIComponent(s.name), {
        method: "POST", body: JSON.stringify({ prefix }),
      });
      return { store: s.name, locks: list.locks };
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
      return { store: s.name, locks: [], error: e.message };
    }
  }));
  // A failed list call feeds the store's health: ask again so the table shows it now.
  const stores = lists.some((l) => l.error) ? (await call("/dlock/v1/stores")).stores : answer.stores;
  renderStores(stores);
  renderLocks(lists, performance.now());
  const unlisted = answer.stores.filter((s) => !s.capabilities.includes("LISTING")).map((s) => s.name);
  const failed = lists.filter((l) => l.error).map((l) => l.store + ": " + l.error);
  $("unlisted").textContent = [
    unlisted.length ? "Can't list the locks of " + unlisted.join(", ") + " (no LISTING)." : "",
    ...failed.map((f) => "Listing failed, " + f),
  ].filter(Boolean).join(" ");
  setStatus("live · updated " + clock(Date.now()));
}

async function refreshLoop() {
  for (;;) {
    const started = performance.now();
    try {
      await refresh();
    } catch (e) {
      if (e instanceof Unauthorized) return askToken(state.apiToken !== null);
      setStatus("sidecar unreachable: " + e.message, true);
    }
    const wait = Math.max(0, REFRESH_MS - (performance.now() - started));
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

// --- The feed ------------------------------------------------------------------------

/** " after waiting 1.2 s", or nothing for a grant or refusal that did not wait. */
function waited(e) {
  const ms = Number(e.waitedMs || 0);
  return ms >= 100 ? " after waiting " + timeLeft(ms) : "";
}

const WHAT = {
  granted: (e) => ["granted to " + e.lockOwner + (e.mode === "SHARED" ? ", shared" : "") +
    (e.fencingToken !== "0" ? " (fencing token " + e.fencingToken + ")" : "") + waited(e) +
    (e.with ? ", one multi-lock with " + e.with.join(", ") : ""), "good"],
  refused: (e) => ["refused to " + e.lockOwner + waited(e), ""],
  released: (e) => [e.outcome === "released" ? "released by " + e.lockOwner
    : "release by " + e.lockOwner + ": " + e.outcome, ""],
  expired: (e) => ["expired unreleased (owner " + e.lockOwner + ")", "bad"],
  lost: (e) => ["lost by " + e.lockOwner + ": " + e.reason, "bad"],
  forceReleased: () => ["released by force", "bad"],
  storeFailing: (e) => ["store failing: " + e.error, "bad"],
  storeRecovered: (e) => ["store recovered after " + timeLeft(Number(e.afterMs)) +
    " (" + e.failedCalls + " failed calls)", "good"],
  component: (e) => ["component " + e.change + (e.reason ? ": " + e.reason : ""),
    e.change === "rejected" ? "bad" : ""],
  missed: (e) => ["(" + e.count + " events missed: this page fell behind)", "bad"],
};

function showEvent(e) {
  const describe = WHAT[e.what] || (() => [e.what, ""]);
  const [text, tone] = describe(e);
  const li = el("li", null, tone);
  li.dataset.what = e.what;
  const at = e.atUnixMs ? Number(e.atUnixMs) : Date.now();
  const subject = e.resourceId ? e.store + "/" + e.resourceId : e.store || "";
  li.append(el("time", clock(at)), document.createTextNode((subject ? subject + " " : "") + text));
  const feed = $("feed");
  feed.prepend(li);
  while (feed.children.length > FEED_LINES) feed.lastChild.remove();
}

/** Reads /dlock/v1/events (server-sent events) with fetch, which can send the token. */
async function feedLoop() {
  for (;;) {
    try {
      const headers = state.apiToken !== null ? { "dapr-api-token": state.apiToken } : {};
      const response = await fetch("/dlock/v1/events", { headers, cache: "no-store" });
      // Without the token yet: try again once the refresh loop has asked for it.
      if (!response.ok) throw new Error("HTTP " + response.status);
      $("feed").replaceChildren();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message.split("\n").filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart()).join("\n");
          if (data) showEvent(JSON.parse(data));
        }
      }
    } catch (e) {
      // The sidecar restarting, or a network blip: read again shortly.
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// --- Tokens and force release ---------------------------------------------------------

function askToken(refused) {
  $("token-error").textContent = refused ? "The sidecar refused that token." : "";
  $("api-token").value = "";
  const dialog = $("token-dialog");
  if (!dialog.open) dialog.showModal();
}

function askForceRelease(tr) {
  $("force-resource").textContent = tr.dataset.resource;
  $("force-store").textContent = tr.dataset.store;
  $("force-owner").textContent = tr.cells[2].textContent;
  $("force-error").textContent = "";
  $("admin-token").value = state.adminToken;
  const dialog = $("force-dialog");
  dialog.dataset.store = tr.dataset.store;
  dialog.dataset.resource = tr.dataset.resource;
  dialog.showModal();
}

async function forceRelease(event) {
  const dialog = $("force-dialog");
  if (event.submitter && event.submitter.value !== "confirm") return; // cancelled
  event.preventDefault();
  const token = $("admin-token").value;
  try {
    const answer = await call("/dlock/v1/force-release/" + encodeURIComponent(dialog.dataset.store), {
      method: "POST",
      headers: { "dlock-admin-token": token },
      body: JSON.stringify({ resourceId: dialog.dataset.resource }),
    });
    state.adminToken = token;
    dialog.close();
    setStatus(answer.released ? "released " + dialog.dataset.resource : dialog.dataset.resource + " was no longer held");
    await refresh();
  } catch (e) {
    if (e instanceof Unauthorized) {
      dialog.close();
      return askToken(true);
    }
    $("force-error").textContent = e.message;
  }
}

function start() {
  $("token-form").addEventListener("submit", () => {
    state.apiToken = $("api-token").value;
    refreshLoop();
  });
  $("force-form").addEventListener("submit", forceRelease);
  $("prefix").addEventListener("input", () => refresh().catch(() => {}));
  setInterval(tick, 100);
  refreshLoop();
  feedLoop();
}

start();
