"use strict";
// The chat widget of the visitor-session demo: a launcher, the latest page of
// the conversation (earlier pages on demand), a send box and "Start over".
// Served as its own file so that pages carry a strict Content-Security-Policy.
const $ = (id) => document.getElementById(id);
const UNAVAILABLE = "Chat is unavailable right now, your conversation is safe.";
const PAGE = 50;
// The session line (state, IP) is for developers: `?debug` in the address.
const DEBUG = new URLSearchParams(location.search).has("debug");

// Requests that may create a session go one at a time, so one browser never
// creates two sessions.
let queue = Promise.resolve();
function serial(task) {
  const run = queue.then(task, task);
  queue = run.catch(() => {});
  return run;
}

// Message ids come from the browser, so that a retried send is stored once.
function messageId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

let shown = [];          // messages the server confirmed, oldest first
let more = false;        // earlier messages exist on the server
let pending = null;      // the message being sent: { id, text }

function clock(ms) {
  const at = new Date(ms);
  const time = document.createElement("time");
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return time;
}

function render() {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
  list.replaceChildren();
  const all = pending ? [...shown, { ...pending, from: "visitor", pending: true }] : shown;
  if (all.length === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "Ask us anything.";
    list.append(li);
  }
  for (const m of all) {
    const li = document.createElement("li");
    li.className = m.from === "agent" ? "agent" : "visitor";
    if (m.pending) li.classList.add("pending");
    li.dataset.id = m.id;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    li.append(text);
    if (m.at_ms) li.append(clock(m.at_ms));
    list.append(li);
  }
  $("earlier").hidden = !more;
  if (atBottom || pending) list.scrollTop = list.scrollHeight;
}

function status(text) {
  $("status").textContent = text;
}

async function page(before) {
  const query = before ? `?limit=${PAGE}&before=${encodeURIComponent(before)}` : `?limit=${PAGE}`;
  const res = await fetch(`/api/messages${query}`);
  if (!res.ok) throw new Error(`messages: ${res.status}`);
  return res.json();
}

async function refresh() {
  try {
    const session = await fetch("/api/session").then((r) => r.json());
    $("session").textContent = session.id
      ? `${session.state} session · ${session.ip ?? "no ip"}`
      : session.available === false ? "session unavailable" : "no session yet";
    $("session").dataset.state = session.state ?? "none";
    if (session.available === false) {
      // Keep what is on screen: the conversation is not lost.
      status(UNAVAILABLE);
      return false;
    }
    const latest = await page(null);
    // Keep the earlier pages already shown, up to where the latest begins.
    const start = latest.length ? shown.findIndex((m) => m.id === latest[0].id) : -1;
    if (start >= 0) {
      shown = shown.slice(0, start).concat(latest);
    } else {
      shown = latest;
      more = latest.length === PAGE;
    }
    status("");
    render();
    return true;
  } catch (_) {
    status(UNAVAILABLE);
    return false;
  }
}

async function loadEarlier() {
  if (!shown.length) return;
  try {
    const earlier = await page(shown[0].id);
    shown = earlier.concat(shown);
    more = earlier.length === PAGE;
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    render();
    list.scrollTop = list.scrollHeight - fromBottom;
  } catch (_) {
    status(UNAVAILABLE);
  }
}

async function sendPending() {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch("/api/messages", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: pending.id, text: pending.text }),
      });
      if (res.ok) {
        pending = null;
        await refresh();
        return;
      }
      if (res.status < 500) {
        // Refused for good (too long, conversation full): say so, drop it.
        status(res.status === 413 ? "This conversation is full." : "This message could not be sent.");
        pending = null;
        render();
        return;
      }
    } catch (_) {
      // No answer: it may have been stored; the retry carries the same id.
    }
    status(UNAVAILABLE);
    await new Promise((done) => setTimeout(done, Math.min(1000 * 2 ** attempt, 5000)));
  }
}

function open(opened) {
  $("chat").hidden = !opened;
  $("launcher").setAttribute("aria-expanded", String(opened));
  $("launcher").setAttribute("aria-label", opened ? "Close the chat" : "Open the chat");
  if (opened) $("text").focus();
  else $("launcher").focus();
}

function confirming(asking) {
  $("confirm-reset").hidden = !asking;
  $("reset").hidden = asking;
  (asking ? $("confirm-no") : $("reset")).focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("session").hidden = !DEBUG;

  $("send").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value.trim();
    if (!text || pending) return;
    pending = { id: messageId(), text };
    $("text").value = "";
    $("send-button").disabled = true;
    render();
    serial(sendPending).finally(() => { $("send-button").disabled = false; });
  });

  $("earlier").addEventListener("click", () => serial(loadEarlier));

  $("reset").addEventListener("click", () => confirming(true));
  $("confirm-no").addEventListener("click", () => confirming(false));
  $("confirm-yes").addEventListener("click", () => {
    $("confirm-yes").disabled = true;
    serial(async () => {
      const res = await fetch("/api/session/reset", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      if (res.ok) {
        shown = [];
        more = false;
        render();
      }
      await refresh();
    }).finally(() => {
      $("confirm-yes").disabled = false;
      confirming(false);
    });
  });

  $("launcher").addEventListener("click", () => open($("chat").hidden));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("chat").hidden) open(false);
  });

  serial(refresh);
});
