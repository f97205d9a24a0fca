// The interlock console: one EventSource on /events, no framework, no build step.
// Everything from the daemon is rendered with textContent (never as HTML): chain events
// are untrusted data.
"use strict";

const state = { items: new Map(), status: null, chains: [], chart: [], query: "", found: null };
const TX_HASH = /^[0-9a-f]{64}$/;
const TX_FIELDS = ["mint_tx", "release_tx", "refund_tx"];
const SHOWN = 200;
const FINAL = new Set(["minted", "released", "refunded", "claimed"]);
const BAD = new Set(["refused", "frozen", "waiting", "stopped"]);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function badge(text, kind) {
  return el("span", { class: "badge " + (kind || "") }, text);
}

function stateKind(s) {
  if (FINAL.has(s) || s === "running") return "ok";
  if (BAD.has(s) || String(s).startsWith("refused: ")) return "bad";
  return "warn";
}

function short(hex, n) {
  const s = String(hex ?? "");
  return s.length > (n || 12) ? s.slice(0, n || 12) + "…" : s;
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s >= 86400) return (s / 86400).toFixed(1) + " d";
  if (s >= 3600) return (s / 3600).toFixed(1) + " h";
  if (s >= 60) return (s / 60).toFixed(1) + " min";
  return Number(s).toFixed(1) + " s";
}

function setRows(table, rows) {
  const body = document.querySelector(table + " tbody");
  body.replaceChildren(...rows);
}

function renderHeader() {
  const st = state.status;
  if (!st) return;
  const h = document.getElementById("health");
  h.textContent = st.ok ? "healthy" : "unhealthy: " + st.problems.join("; ");
  h.className = "badge " + (st.ok ? "ok" : "bad");
  document.getElementById("uptime").textContent = "up " + seconds(st.uptime_s);
}

function renderChains() {
  const addresses = (state.status && state.status.chains) || {};
  const rows = state.chains.map((c) =>
    el(
      "tr",
      { "data-chain": c.id },
      el("td", {}, c.id),
      el("td", { class: "engine" }, c.engine ? c.engine.toUpperCase() : "–"),
      el("td", { class: "height" }, c.height ?? "–"),
      el("td", { class: "interval" }, c.block_interval === null || c.block_interval === undefined ? "–" : seconds(c.block_interval)),
      el("td", { class: "reach" }, badge(c.reachable ? "reachable" : "unreachable", c.reachable ? "ok" : "bad")),
      el(
        "td",
        { class: "wrap" },
        ...c.endpoints.map((e) =>
          el("div", {}, el("span", { class: "mono" }, e.url), " ",
            e.reachable ? badge("ok", "ok") : el("span", { class: "err" }, e.error || "unreachable")),
        ),
      ),
      el("td", { class: "mono" }, (addresses[c.id] || {}).relayer_address || ""),
      el("td", { class: "balance" }, Object.entries(c.balances || {}).map(([d, v]) => `${v} ${d}`).join(", ") || "–"),
    ),
  );
  setRows("#chains", rows);
}

function renderPaths() {
  const work = (state.status && state.status.work) || [];
  const rows = work.map((w) => {
    const frozen = w.state === "frozen" || !!w.misbehaviour;
    const lag = w.client_id && w.source_height ? Math.max(0, w.source_height - w.client_height) : null;
    return el(
      "tr",
      { "data-work": w.name },
      el("td", { class: "mono" }, w.name),
      el("td", { class: "state" }, badge(w.state, stateKind(w.state))),
      el("td", {}, w.source_height),
      el("td", { class: "mono" }, w.client_id ? w.client_id + " @ " + w.client_height : "–"),
      el("td", {}, lag ?? "–"),
      el("td", {}, seconds(w.trusting_period_left_s)),
      el("td", { class: "frozen" }, frozen ? badge("frozen", "bad") : badge("no", "ok")),
      el("td", {}, w.backlog),
      el("td", {}, seconds(w.oldest_pending_age_s)),
      el("td", {}, w.relayed),
      el("td", { class: "wrap err" }, w.misbehaviour || w.last_error || ""),
    );
  });
  setRows("#paths", rows);
}

function matches(item, q) {
  if (!q) return true;
  if (state.found && state.found.tx === q && state.found.ids.includes(item.id)) return true;
  const hay = [item.id, item.sender, item.recipient, item.denom, item.nonce, item.hashlock, item.src, item.dst];
  for (const f of TX_FIELDS) hay.push(item[f]);
  for (const leg of Object.values(item.legs || {})) hay.push(leg.lock_id, leg.sender, leg.receiver, leg.claimer);
  return hay.some((v) => v !== undefined && v !== null && String(v).toLowerCase().includes(q));
}

function proofCell(item) {
  const out = [];
  for (const key of ["locked_proof", "burned_proof", "expired_proof"]) {
    const p = item[key];
    if (!p) continue;
    out.push(el("div", { class: "mono", title: p.root || "" },
      `${p.event} @ ${p.chain} h${p.height} #${p.index}` + (p.root ? ` root ${short(p.root, 16)}` : "")));
  }
  for (const f of TX_FIELDS) {
    if (item[f]) out.push(el("div", { class: "mono", title: item[f] }, `${f.replace("_tx", "")} tx ${short(item[f], 16)}`));
  }
  for (const [chain, leg] of Object.entries(item.legs || {})) {
    out.push(el("div", { class: "mono", title: leg.root || "" },
      `${chain}: ${leg.state} h${leg.height} #${leg.index} root ${short(leg.root, 16)}`));
  }
  return el("td", { class: "proof" }, ...out);
}

function renderItems() {
  const q = state.query.trim().toLowerCase();
  const all = [...state.items.values()].sort((a, b) => b.updated - a.updated);
  const found = all.filter((i) => matches(i, q));
  document.getElementById("count").textContent = `${found.length} of ${all.length}`;
  const rows = found.slice(0, SHOWN).map((i) => {
    const swap = i.kind === "swap";
    const legs = Object.entries(i.legs || {});
    const route = swap ? legs.map(([c]) => c).join(" ⇄ ") : `${i.src} → ${i.dst}`;
    const amount = swap
      ? legs.map(([, l]) => `${l.amount} ${l.denom}`).join(" ⇄ ")
      : `${i.amount} ${i.denom}`;
    const parties = swap
      ? legs.map(([, l]) => `${short(l.sender, 10)}→${short(l.receiver, 10)}`).join(", ") + `; secret: ${i.secret}`
      : `${short(i.sender, 12)} → ${short(i.recipient, 12)}`;
    return el(
      "tr",
      { "data-id": i.id },
      el("td", { class: "mono", title: i.id }, swap ? "swap " + short(i.hashlock, 12) : i.id.replace(/^transfer:/, "")),
      el("td", { class: "state" }, badge(i.state, stateKind(i.state)), i.error ? el("div", { class: "err" }, i.error) : null),
      el("td", {}, route),
      el("td", {}, amount),
      el("td", { class: "mono wrap" }, parties),
      proofCell(i),
      el("td", { class: "muted" }, (i.history || []).map((h) => h.state).join(" → ")),
    );
  });
  setRows("#items", rows);
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderChart() {
  const box = document.getElementById("chart");
  const pts = state.chart;
  const W = 900, H = 180, L = 44, R = 48, T = 10, B = 22;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  root.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  if (pts.length === 0) {
    root.append(svg("text", { x: L, y: H / 2 }, "no samples yet"));
    box.replaceChildren(root);
    return;
  }
  const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 1);
  const maxT = Math.max(...pts.map((p) => p.throughput), 0.1);
  const lats = pts.filter((p) => p.latency !== null);
  const maxL = Math.max(...lats.map((p) => p.latency), 0.1);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const bw = Math.max(1, (W - L - R) / Math.max(pts.length, 1) - 1);
  for (const p of pts) {
    const h = (p.throughput / maxT) * (H - T - B);
    root.append(svg("rect", { class: "tput", x: x(p.t) - bw, y: H - B - h, width: bw, height: h }));
  }
  if (lats.length) {
    const d = lats.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${(H - B - (p.latency / maxL) * (H - T - B)).toFixed(1)}`).join(" ");
    root.append(svg("path", { class: "lat", d }));
  }
  root.append(svg("text", { x: 2, y: T + 10 }, `${maxT.toFixed(1)}/s`));
  root.append(svg("text", { x: 2, y: H - B }, "0"));
  root.append(svg("text", { class: "lat", x: W - R + 4, y: T + 10 }, `${maxL.toFixed(2)} s`));
  root.append(svg("text", { x: L, y: H - 4 }, "bars: packets and swap actions per second; line: mean relay latency (source commit → destination commit)"));
  box.replaceChildren(root);
}

let pending = false;
function render() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    renderHeader();
    renderChains();
    renderPaths();
    renderChart();
    renderItems();
  });
}

function applyStatus(d) {
  state.status = d.status;
  state.chains = d.chains;
  state.chart = d.chart;
}

// A transaction hash may be one the daemon never saw (the lock a user sent): the daemon
// asks the chains for its receipt and answers which transfers or swaps it touched.
async function lookup(q) {
  if (!TX_HASH.test(q) || (state.found && state.found.tx === q)) return;
  try {
    const r = await fetch("/lookup?tx=" + q);
    if (!r.ok) return;
    const d = await r.json();
    state.found = { tx: d.tx, ids: d.ids };
    render();
  } catch {
    // offline: the local search still applies
  }
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/events");
  es.addEventListener("open", () => { conn.textContent = "live"; conn.className = "badge ok"; });
  es.addEventListener("error", () => { conn.textContent = "reconnecting"; conn.className = "badge bad"; });
  es.addEventListener("snapshot", (ev) => {
    const d = JSON.parse(ev.data);
    state.items = new Map(d.items.map((i) => [i.id, i]));
    applyStatus(d);
    render();
  });
  es.addEventListener("item", (ev) => {
    const i = JSON.parse(ev.data);
    state.items.set(i.id, i);
    render();
  });
  es.addEventListener("status", (ev) => {
    applyStatus(JSON.parse(ev.data));
    render();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("search").addEventListener("input", (ev) => {
    state.query = ev.target.value;
    lookup(state.query.trim().toLowerCase());
    render();
  });
  connect();
});
