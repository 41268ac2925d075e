// nsqadmin's web UI: plain JavaScript, no build step, no libraries.
//
// Every page reads NSQ's JSON API (/api/...) and nsqadmin's own summary of
// recent samples (rates, depth history, node health). The summary arrives
// as server-sent events from /api/events after every sample; each one
// refreshes the page in place, so nothing needs a reload.
"use strict";

const CONFIG = JSON.parse(document.getElementById("nsqadmin-config").textContent);
const BASE = CONFIG.base; // always ends with "/"

const state = {
  summary: null, // the latest /api/summary
  page: null, // {name, args}
  data: null, // what the current page fetched
  error: null,
  filter: "",
  lastHtml: "",
  generation: 0,
  lastCounter: null,
};

// ------------------------------------------------------------ helpers

function esc(s) {
  return String(s === undefined || s === null ? "" : s)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function num(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return "–";
  return Number(n).toLocaleString("en-US");
}

function rate(r) {
  if (r === undefined || r === null) return '<span class="muted">–</span>';
  const digits = r >= 100 ? 0 : r >= 10 ? 1 : 2;
  return esc(r.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: r > 0 && r < 100 ? 1 : 0 })) + '<span class="muted">/s</span>';
}

function duration(ns) {
  if (!ns && ns !== 0) return "–";
  const s = ns / 1e9;
  if (s < 1e-3) return (ns / 1e3).toFixed(0) + "µs";
  if (s < 1) return (ns / 1e6).toFixed(1) + "ms";
  if (s < 60) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d > 0) return d + "d " + (h % 24) + "h";
  if (h > 0) return h + "h " + (m % 60) + "m";
  return m + "m " + Math.floor(s % 60) + "s";
}

function ago(ms) {
  if (!ms) return "never";
  return duration((Date.now() - ms) * 1e6) + " ago";
}

function quantile(q) {
  const p = q * 100;
  return "p" + (Number.isInteger(p) ? p : p.toFixed(1));
}

function href(...parts) {
  return BASE + parts.map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join("/");
}

function link(text, url, cls) {
  return `<a data-link ${cls ? `class="${cls}"` : ""} href="${esc(url)}">${esc(text)}</a>`;
}

// An inline SVG chart of a series (nulls break the line).
function spark(values, opts) {
  const o = Object.assign({ w: 120, h: 26, color: "#2563eb", fill: "rgba(37,99,235,.12)", label: "" }, opts || {});
  const vs = (values || []).slice(-Math.max(2, o.points || 120));
  const known = vs.filter((v) => v !== null && v !== undefined);
  if (known.length < 2) {
    return `<svg class="sparkline" width="${o.w}" height="${o.h}" role="img" aria-label="no history yet"><line x1="0" y1="${o.h - 1.5}" x2="${o.w}" y2="${o.h - 1.5}" stroke="#e2e8f0" stroke-width="1" stroke-dasharray="3 3"/></svg>`;
  }
  const max = Math.max(...known), min = Math.min(0, ...known);
  const span = max - min || 1;
  const step = o.w / Math.max(1, vs.length - 1);
  const y = (v) => (o.h - 2 - ((v - min) / span) * (o.h - 5)).toFixed(1);
  let line = "", area = "", runs = [];
  let run = [];
  vs.forEach((v, i) => {
    if (v === null || v === undefined) {
      if (run.length) runs.push(run);
      run = [];
    } else run.push([(i * step).toFixed(1), y(v)]);
  });
  if (run.length) runs.push(run);
  for (const r of runs) {
    line += "M" + r.map((p) => p.join(",")).join("L");
    area += `M${r[0][0]},${o.h}L` + r.map((p) => p.join(",")).join("L") + `L${r[r.length - 1][0]},${o.h}Z`;
  }
  const last = known[known.length - 1];
  const title = `${o.label} now ${o.fmt ? o.fmt(last) : num(last)}, peak ${o.fmt ? o.fmt(max) : num(max)}`;
  return `<svg class="sparkline" width="${o.w}" height="${o.h}" viewBox="0 0 ${o.w} ${o.h}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title><path d="${area}" fill="${o.fill}"/><path d="${line}" fill="none" stroke="${o.color}" stroke-width="1.5" stroke-linejoin="round"/></svg>`;
}

const fmtRate = (r) => (r === null || r === undefined ? "–" : r.toFixed(r >= 100 ? 0 : 1) + "/s");
const queuedSpark = (s, o) => spark(s && s.queued_history, Object.assign({ color: "#b45309", fill: "rgba(217,119,6,.13)", label: "queued" }, o));
const depthSpark = (s, o) => spark(s && s.depth_history, Object.assign({ color: "#b45309", fill: "rgba(217,119,6,.13)", label: "depth" }, o));
const rateSpark = (s, o) => spark(s && s.rate_history, Object.assign({ label: "rate", fmt: fmtRate }, o));

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/vnd.nsq; version=1.0" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(BASE + path, init);
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = { message: "" };
  }
  if (!resp.ok) {
    const err = new Error((data && data.message) || resp.status + " " + resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function summaryTopic(name) {
  return state.summary && state.summary.topics ? state.summary.topics.find((t) => t.topic === name) : null;
}

function summaryChannel(topic, channel) {
  const t = summaryTopic(topic);
  return t ? t.channels.find((c) => c.channel === channel) : null;
}

function nodeHealth(node) {
  return state.summary && state.summary.nodes ? state.summary.nodes.find((n) => n.node === node) : null;
}

// Messages per second into every topic of one nsqd.
function nodeRate(node) {
  if (!state.summary || !state.summary.topics) return null;
  let sum = null;
  for (const t of state.summary.topics) {
    const f = t.nodes.find((x) => x.node === node);
    if (f && f.rate !== null) sum = (sum || 0) + f.rate;
  }
  return sum;
}

function healthDot(node) {
  const h = nodeHealth(node);
  if (!h) return '<span class="dot"></span>';
  if (h.state === "ok") return '<span class="dot ok" title="answering"></span>';
  return `<span class="dot bad" title="${esc(h.state + ": " + h.error)}"></span>`;
}

function pausedBadge(p) {
  return p ? ' <span class="badge paused">paused</span>' : "";
}

function growingMark(s) {
  return s && s.growing ? ' <span class="badge bad" title="depth rose at every recent sample">▲ growing</span>' : "";
}

function warningBox(message) {
  return message ? `<div class="alert warn">${esc(message)}</div>` : "";
}

function e2eHeaders(e2e) {
  const ps = (e2e && e2e.percentiles) || [];
  return ps.map((p) => `<th class="num" title="end-to-end processing latency">e2e ${quantile(p.quantile)}</th>`).join("");
}

function e2eCells(e2e, count) {
  const ps = (e2e && e2e.percentiles) || [];
  const cells = ps.map((p) => `<td class="num" title="min ${duration(p.min)}, max ${duration(p.max)}">${duration(p.average)}</td>`);
  while (cells.length < count) cells.push('<td class="num muted">–</td>');
  return cells.join("");
}

// ------------------------------------------------------------ routing

function route(pathname) {
  if (pathname + "/" === BASE) pathname = BASE;
  let rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname.replace(/^\//, "");
  const parts = rest.split("/").filter((p) => p !== "").map(decodeURIComponent);
  if (parts.length === 0) return { name: "topics", args: [] };
  if (parts[0] === "topics" && parts.length === 1) return { name: "topics", args: [] };
  if (parts[0] === "topics" && parts.length === 2) return { name: "topic", args: [parts[1]] };
  if (parts[0] === "topics" && parts.length === 3) return { name: "channel", args: [parts[1], parts[2]] };
  if (parts[0] === "nodes" && parts.length === 1) return { name: "nodes", args: [] };
  if (parts[0] === "nodes" && parts.length === 2) return { name: "node", args: [parts[1]] };
  if (parts[0] === "counter") return { name: "counter", args: [] };
  if (parts[0] === "lookup") return { name: "lookup", args: [] };
  return { name: "notfound", args: [] };
}

function navigate(url, push) {
  if (push) history.pushState({}, "", url);
  state.page = route(new URL(url, location.href).pathname);
  state.data = null;
  state.error = null;
  state.lastHtml = "";
  state.lastCounter = null;
  document.querySelectorAll("[data-nav]").forEach((a) => {
    const nav = a.getAttribute("data-nav");
    const active = nav === state.page.name || (nav === "topics" && (state.page.name === "topic" || state.page.name === "channel")) || (nav === "nodes" && state.page.name === "node");
    a.classList.toggle("active", active);
  });
  document.getElementById("main").innerHTML = '<p class="muted loading">Loading…</p>';
  window.scrollTo(0, 0);
  refresh();
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[data-link]");
  if (a && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey && ev.button === 0) {
    ev.preventDefault();
    navigate(a.href, true);
    return;
  }
  const act = ev.target.closest("[data-action]");
  if (act) {
    ev.preventDefault();
    runAction(act.dataset);
  }
});
window.addEventListener("popstate", () => navigate(location.href, false));

// ------------------------------------------------------------ data

const loaders = {
  topics: async () => api("GET", "api/topics"),
  topic: async ([t]) => api("GET", "api/topics/" + encodeURIComponent(t)),
  channel: async ([t, c]) => api("GET", "api/topics/" + encodeURIComponent(t) + "/" + encodeURIComponent(c)),
  nodes: async () => api("GET", "api/nodes"),
  node: async ([n]) => api("GET", "api/nodes/" + encodeURIComponent(n)),
  counter: async () => api("GET", "api/counter"),
  lookup: async () => (CONFIG.lookupd.length ? api("GET", "api/topics?inactive=true") : { topics: {}, message: "" }),
  notfound: async () => ({}),
};

let refreshing = null;
let refreshAgain = false;

// Fetch the page's data and draw it; calls that overlap are folded into one more.
async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      const page = state.page;
      const gen = ++state.generation;
      try {
        const data = await loaders[page.name](page.args);
        if (gen !== state.generation || page !== state.page) continue;
        state.data = data;
        state.error = null;
      } catch (e) {
        if (page !== state.page) continue;
        state.error = e;
      }
      draw();
    } while (refreshAgain);
  })();
  try {
    await refreshing;
  } finally {
    refreshing = null;
  }
}

function draw() {
  const page = state.page;
  let html;
  if (state.error && !state.data) {
    html = errorPage(state.error);
  } else if (!state.data) {
    return;
  } else {
    html = pages[page.name](state.data, page.args);
    if (state.error) html = `<div class="alert bad">Could not refresh: ${esc(state.error.message)}</div>` + html;
  }
  if (html !== state.lastHtml) {
    const main = document.getElementById("main");
    const focused = document.activeElement && document.activeElement.id;
    const values = {};
    main.querySelectorAll("input[id]").forEach((i) => (values[i.id] = [i.value, i.selectionStart]));
    main.innerHTML = html;
    for (const [id, [v, pos]] of Object.entries(values)) {
      const i = document.getElementById(id);
      if (i) i.value = v;
      if (i && id === focused) {
        i.focus();
        try { i.setSelectionRange(pos, pos); } catch (e) { /* not a text input */ }
      }
    }
    state.lastHtml = html;
    bindPage();
  }
  drawBanner();
}

function drawBanner() {
  const s = state.summary;
  let html = "";
  if (s && s.nodes) {
    const bad = s.nodes.filter((n) => n.state !== "ok");
    for (const n of bad) {
      const what = n.state === "gone" ? "is no longer registered with any nsqlookupd" : "does not answer";
      html += `<div class="alert bad" data-node-alert="${esc(n.node)}"><strong>nsqd ${esc(n.node)}</strong>${n.hostname ? " (" + esc(n.hostname) + ")" : ""} ${what}${n.last_seen_ms ? "; last seen " + esc(ago(n.last_seen_ms)) : ""}.${n.error && n.state !== "gone" ? "\n" + esc(n.error) : ""}</div>`;
    }
    if (s.message) html += warningBox(s.message);
  }
  const el = document.getElementById("banner");
  if (el.innerHTML !== html) el.innerHTML = html;
}

function errorPage(e) {
  let hint = "";
  if (/TOPIC_NOT_FOUND/.test(e.message)) hint = "<p>No nsqlookupd knows this topic (it may have been deleted).</p>";
  if (e.status === 404 && /NODE_NOT_FOUND/.test(e.message)) hint = "<p>No nsqd with this address is part of the cluster now.</p>";
  return `<h1>Something went wrong</h1><div class="alert bad">${esc(e.message)}</div>${hint}<p>${link("Back to topics", BASE)}</p>`;
}

// ------------------------------------------------------------ pages

const pages = {};

pages.notfound = () => `<h1>Page not found</h1><p>${link("Back to topics", BASE)}</p>`;

pages.topics = (data) => {
  const names = data.topics || [];
  const filter = state.filter.toLowerCase();
  const shown = names.filter((n) => n.toLowerCase().includes(filter));
  const s = state.summary;
  let totalRate = null, totalDepth = 0, growing = 0;
  for (const n of names) {
    const t = summaryTopic(n);
    if (!t) continue;
    totalDepth += t.queued;
    if (t.rate !== null) totalRate = (totalRate || 0) + t.rate;
    growing += t.channels.filter((c) => c.growing).length;
  }
  const nodes = s && s.nodes ? s.nodes : [];
  const down = nodes.filter((n) => n.state !== "ok").length;
  let html = `<div class="page-head"><div><h1>Topics</h1><p class="sub">${names.length} topic${names.length === 1 ? "" : "s"} in the cluster${CONFIG.lookupd.length ? ", as the nsqlookupd know them" : ""}</p></div></div>`;
  html += warningBox(data.message);
  html += `<div class="cards">
    <div class="card"><div class="label">Topics</div><div class="value">${num(names.length)}</div></div>
    <div class="card${down ? " bad" : ""}"><div class="label">nsqd nodes</div><div class="value">${num(nodes.length - down)}<small> answering${down ? `, ${down} not` : ""}</small></div></div>
    <div class="card"><div class="label">Messages in</div><div class="value" id="total-rate">${rate(totalRate)}</div></div>
    <div class="card${growing ? " warn" : ""}"><div class="label">Queued (all topics)</div><div class="value" id="total-depth">${num(totalDepth)}${growing ? `<small> · ${growing} growing</small>` : ""}</div></div>
  </div>`;
  html += `<div class="toolbar"><input type="search" id="topic-filter" placeholder="Filter topics…" value="${esc(state.filter)}" aria-label="Filter topics"></div>`;
  if (!names.length) return html + '<div class="empty">No topics yet. Publish to a topic, or create one on the <a data-link href="' + BASE + 'lookup">Lookup</a> page.</div>';
  html += `<div class="table-wrap"><table id="topics-table"><thead><tr>
    <th>Topic</th><th class="num" title="messages waiting in the topic and its channels">Queued</th><th></th><th class="num">Rate</th><th></th><th class="num">Messages</th><th>Channels <span class="muted">(depth)</span></th></tr></thead><tbody>`;
  for (const n of shown) {
    const t = summaryTopic(n);
    const chans = t ? t.channels.map((c) => `<a data-link class="badge link${c.growing ? " bad" : c.paused ? " paused" : ""}" href="${esc(href("topics", n, c.channel))}" title="depth ${num(c.depth)}${c.growing ? " and growing" : ""}${c.paused ? ", paused" : ""}">${esc(c.channel)} <span class="depth">${num(c.depth)}</span>${c.growing ? " ▲" : ""}</a>`).join("") : "";
    html += `<tr data-topic="${esc(n)}">
      <td class="name">${link(n, href("topics", n))}${t && t.paused ? pausedBadge(true) : ""}${t ? "" : ' <span class="badge warn" title="no nsqd has this topic">no producers</span>'}</td>
      <td class="num" data-field="queued">${t ? num(t.queued) : "–"}</td>
      <td class="spark">${queuedSpark(t)}</td>
      <td class="num" data-field="rate">${t ? rate(t.rate) : "–"}</td>
      <td class="spark">${rateSpark(t)}</td>
      <td class="num" data-field="messages">${t ? num(t.message_count) : "–"}</td>
      <td class="wrap">${chans || '<span class="muted">none</span>'}</td></tr>`;
  }
  html += "</tbody></table></div>";
  if (!shown.length) html += '<p class="muted">No topic matches the filter.</p>';
  return html;
};

function actionButtons(kind, paused, topic, channel) {
  if (!CONFIG.is_admin) return "";
  const d = `data-topic="${esc(topic)}"${channel !== undefined ? ` data-channel="${esc(channel)}"` : ""}`;
  return `<div class="actions">
    ${paused ? `<button class="btn btn-primary" data-action="unpause" ${d}>Unpause ${kind}</button>` : `<button class="btn" data-action="pause" ${d}>Pause ${kind}</button>`}
    <button class="btn btn-warn" data-action="empty" ${d}>Empty ${kind}</button>
    <button class="btn btn-danger" data-action="delete" ${d}>Delete ${kind}</button>
  </div>`;
}

function statCards(s, extra) {
  return `<div class="cards">
    <div class="card"><div class="label">Depth</div><div class="value" data-field="depth">${num(extra.depth)}${s && s.growing ? ' <small class="grow">▲ growing</small>' : ""}</div>${depthSpark(s, { w: 220, h: 38 })}</div>
    <div class="card"><div class="label">Message rate</div><div class="value" data-field="rate">${s ? rate(s.rate) : "–"}</div>${rateSpark(s, { w: 220, h: 38 })}</div>
    <div class="card"><div class="label">Messages</div><div class="value" data-field="messages">${num(extra.message_count)}</div></div>
    ${extra.more || ""}
  </div>`;
}

pages.topic = (data, [topic]) => {
  const s = summaryTopic(topic);
  const nodes = data.nodes || [];
  const channels = data.channels || [];
  let html = `<div class="crumbs">${link("Topics", BASE)}<span class="sep">/</span>${esc(topic)}</div>`;
  html += `<div class="page-head"><h1>${esc(topic)}${pausedBadge(data.paused)}</h1>${nodes.length ? actionButtons("topic", data.paused, topic) : ""}</div>`;
  html += warningBox(data.message);
  if (!nodes.length) {
    return html + `<div class="empty">No nsqd has this topic now. See ${link("Lookup", BASE + "lookup")} for topics known only to nsqlookupd.</div>`;
  }
  const queued = data.depth + channels.reduce((n, c) => n + c.depth, 0);
  const growing = channels.filter((c) => (summaryChannel(topic, c.channel_name) || {}).growing).length;
  html += `<div class="cards">
    <div class="card${growing ? " warn" : ""}"><div class="label">Queued (topic + channels)</div><div class="value" data-field="queued">${num(queued)}${growing ? ` <small class="grow">${growing} growing</small>` : ""}</div>${queuedSpark(s, { w: 220, h: 38 })}</div>
    <div class="card"><div class="label">Message rate</div><div class="value" data-field="rate">${s ? rate(s.rate) : "–"}</div>${rateSpark(s, { w: 220, h: 38 })}</div>
    <div class="card"><div class="label">Messages</div><div class="value" data-field="messages">${num(data.message_count)}</div></div>
    <div class="card"><div class="label">Channels</div><div class="value">${num(channels.length)}</div></div>
  </div>`;
  const e2eCount = ((data.e2e_processing_latency || {}).percentiles || []).length;
  html += `<h2>On each nsqd</h2><div class="table-wrap"><table id="topic-nodes"><thead><tr><th>nsqd</th><th class="num">Depth</th><th class="num">Memory + Disk</th><th class="num">Messages</th><th class="num">Rate</th><th class="num">Channels</th>${e2eHeaders(data.e2e_processing_latency)}</tr></thead><tbody>`;
  for (const n of nodes) {
    const nf = s ? s.nodes.find((x) => x.node === n.node) : null;
    const tomb = CONFIG.is_admin && CONFIG.lookupd.length ? `<button class="icon-btn" title="Tombstone: delete this topic from this nsqd and hide it from lookups" data-action="tombstone" data-topic="${esc(topic)}" data-node="${esc(n.node)}">✕</button>` : "";
    html += `<tr data-node="${esc(n.node)}"><td>${tomb}${healthDot(n.node)}${link(n.hostname ? n.hostname + " (" + n.node + ")" : n.node, href("nodes", n.node))}${pausedBadge(n.paused)}</td>
      <td class="num">${num(n.depth)}</td><td class="num">${num(n.memory_depth)} + ${num(n.backend_depth)}</td><td class="num">${num(n.message_count)}</td>
      <td class="num">${nf ? rate(nf.rate) : "–"}</td><td class="num">${num((n.channels || []).length)}</td>${e2eCells(n.e2e_processing_latency, e2eCount)}</tr>`;
  }
  html += `<tr class="total"><td>Total</td><td class="num">${num(data.depth)}</td><td class="num">${num(data.memory_depth)} + ${num(data.backend_depth)}</td><td class="num">${num(data.message_count)}</td><td class="num">${s ? rate(s.rate) : "–"}</td><td class="num">${num(channels.length)}</td>${e2eCells(data.e2e_processing_latency, e2eCount)}</tr>`;
  html += "</tbody></table></div>";

  html += "<h2>Channels</h2>";
  if (!channels.length) {
    return html + '<div class="empty">No channels yet: messages wait in the topic until a consumer subscribes or a channel is created.</div>';
  }
  html += `<div class="table-wrap"><table id="channels-table"><thead><tr><th>Channel</th><th class="num">Depth</th><th></th><th class="num">Memory + Disk</th><th class="num">In-flight</th><th class="num">Deferred</th><th class="num">Requeued</th><th class="num">Timed out</th><th class="num">Messages</th><th class="num">Rate</th><th class="num">Clients</th>${e2eHeaders(data.e2e_processing_latency)}</tr></thead><tbody>`;
  for (const c of channels) {
    const cs = summaryChannel(topic, c.channel_name);
    html += `<tr data-channel="${esc(c.channel_name)}"${cs && cs.growing ? ' class="row-warn"' : ""}><td class="name">${link(c.channel_name, href("topics", topic, c.channel_name))}${pausedBadge(c.paused)}${growingMark(cs)}</td>
      <td class="num" data-field="depth">${num(c.depth)}</td><td class="spark">${depthSpark(cs, { w: 90, h: 22 })}</td><td class="num">${num(c.memory_depth)} + ${num(c.backend_depth)}</td>
      <td class="num">${num(c.in_flight_count)}</td><td class="num">${num(c.deferred_count)}</td><td class="num">${num(c.requeue_count)}</td><td class="num">${num(c.timeout_count)}</td>
      <td class="num" data-field="messages">${num(c.message_count)}</td><td class="num">${cs ? rate(cs.rate) : "–"}</td><td class="num">${num(c.client_count)}</td>${e2eCells(c.e2e_processing_latency, e2eCount)}</tr>`;
  }
  return html + "</tbody></table></div>";
};

function clientAttributes(c) {
  let out = "";
  if (c.tls) out += `<span class="badge tls" title="${esc([c.tls_version, c.tls_cipher_suite, c.tls_negotiated_protocol].filter(Boolean).join(" "))}">TLS${c.tls_version ? " " + esc(c.tls_version.replace("TLS", "")) : ""}</span>`;
  if (c.snappy) out += '<span class="badge">snappy</span>';
  if (c.deflate) out += '<span class="badge">deflate</span>';
  if (c.sample_rate > 0) out += `<span class="badge">sampled ${esc(c.sample_rate)}%</span>`;
  if (c.authed) {
    const who = c.auth_identity ? " " + esc(c.auth_identity) : "";
    out += /^https?:\/\//i.test(c.auth_identity_url || "") ? `<a class="badge ok" href="${esc(c.auth_identity_url)}">authed${who}</a>` : `<span class="badge ok">authed${who}</span>`;
  }
  return out || '<span class="muted">plain</span>';
}

function clientsTable(clients, showNode) {
  if (!clients.length) return '<div class="empty">No clients are connected to this channel.</div>';
  let html = `<div class="table-wrap"><table class="clients-table"><thead><tr><th>Client</th><th>User agent</th><th>Attributes</th>${showNode ? "<th>nsqd</th>" : ""}<th class="num">In-flight</th><th class="num">Ready</th><th class="num">Finished</th><th class="num">Requeued</th><th class="num">Messages</th><th class="num">Connected</th></tr></thead><tbody>`;
  for (const c of clients) {
    const id = c.client_id && c.client_id !== c.hostname ? ` <span class="muted">(${esc(c.client_id)})</span>` : "";
    html += `<tr data-client="${esc(c.remote_address)}" data-node="${esc(c.node)}"><td title="${esc(c.remote_address)}">${esc(c.hostname || c.remote_address)}${id}<div class="muted mono">${esc(c.remote_address)}</div></td>
      <td>${c.user_agent ? `<span class="mono">${esc(c.user_agent)}</span>` : '<span class="muted">–</span>'}</td><td class="wrap">${clientAttributes(c)}</td>
      ${showNode ? `<td>${link(c.node, href("nodes", c.node))}</td>` : ""}
      <td class="num" data-field="in_flight">${num(c.in_flight_count)}</td><td class="num" data-field="ready">${num(c.ready_count)}</td><td class="num" data-field="finished">${num(c.finish_count)}</td>
      <td class="num">${num(c.requeue_count)}</td><td class="num">${num(c.message_count)}</td><td class="num">${duration(c.connected)}</td></tr>`;
  }
  return html + "</tbody></table></div>";
}

pages.channel = (data, [topic, channel]) => {
  const s = summaryChannel(topic, channel);
  let html = `<div class="crumbs">${link("Topics", BASE)}<span class="sep">/</span>${link(topic, href("topics", topic))}<span class="sep">/</span>${esc(channel)}</div>`;
  const nodes = data.nodes || [];
  html += `<div class="page-head"><h1><span class="muted">${esc(topic)} /</span> ${esc(channel)}${pausedBadge(data.paused)}${growingMark(s)}</h1>${nodes.length ? actionButtons("channel", data.paused, topic, channel) : ""}</div>`;
  html += warningBox(data.message);
  if (!nodes.length) return html + `<div class="empty">No nsqd has this channel now. See ${link("Lookup", BASE + "lookup")}.</div>`;
  html += statCards(s, {
    depth: data.depth,
    message_count: data.message_count,
    more: `<div class="card"><div class="label">In flight</div><div class="value" data-field="in_flight">${num(data.in_flight_count)}</div></div><div class="card"><div class="label">Clients</div><div class="value" data-field="clients">${num(data.client_count)}</div></div>`,
  });
  const e2eCount = ((data.e2e_processing_latency || {}).percentiles || []).length;
  html += `<h2>On each nsqd</h2><div class="table-wrap"><table id="channel-nodes"><thead><tr><th>nsqd</th><th class="num">Depth</th><th class="num">Memory + Disk</th><th class="num">In-flight</th><th class="num">Deferred</th><th class="num">Requeued</th><th class="num">Timed out</th><th class="num">Messages</th><th class="num">Rate</th><th class="num">Clients</th>${e2eHeaders(data.e2e_processing_latency)}</tr></thead><tbody>`;
  const row = (n, label, cls, r) => `<tr${cls}><td>${label}</td><td class="num">${num(n.depth)}</td><td class="num">${num(n.memory_depth)} + ${num(n.backend_depth)}</td><td class="num">${num(n.in_flight_count)}</td><td class="num">${num(n.deferred_count)}</td><td class="num">${num(n.requeue_count)}</td><td class="num">${num(n.timeout_count)}</td><td class="num">${num(n.message_count)}</td><td class="num">${r}</td><td class="num">${num(n.client_count)}</td>${e2eCells(n.e2e_processing_latency, e2eCount)}</tr>`;
  for (const n of nodes) {
    const nf = s ? s.nodes.find((x) => x.node === n.node) : null;
    html += row(n, healthDot(n.node) + link(n.hostname ? n.hostname + " (" + n.node + ")" : n.node, href("nodes", n.node)) + pausedBadge(n.paused), ` data-node="${esc(n.node)}"`, nf ? rate(nf.rate) : "–");
  }
  html += row(data, "Total", ' class="total"', s ? rate(s.rate) : "–");
  html += "</tbody></table></div>";
  html += `<h2>Clients (${num((data.clients || []).length)})</h2>` + clientsTable(data.clients || [], true);
  return html;
};

pages.nodes = (data) => {
  const nodes = data.nodes || [];
  const listed = new Set(nodes.map((n) => n.broadcast_address + ":" + n.http_port));
  const missing = state.summary && state.summary.nodes ? state.summary.nodes.filter((h) => h.state !== "ok" && !listed.has(h.node)) : [];
  let html = `<div class="page-head"><div><h1>nsqd nodes</h1><p class="sub">${nodes.length} listed${CONFIG.lookupd.length ? " by " + CONFIG.lookupd.map(esc).join(", ") : ""}</p></div></div>`;
  html += warningBox(data.message);
  if (!nodes.length && !missing.length) return html + '<div class="empty">No nsqd is registered.</div>';
  const lookupdCol = CONFIG.lookupd.length > 0;
  html += `<div class="table-wrap"><table id="nodes-table"><thead><tr><th>Status</th><th>Hostname</th><th>Address</th><th class="num">TCP</th><th class="num">HTTP</th><th class="num">Rate</th><th>Version</th>${lookupdCol ? '<th class="num">Lookupd</th>' : ""}<th>Topics</th></tr></thead><tbody>`;
  for (const n of nodes) {
    const addr = n.broadcast_address + ":" + n.http_port;
    const h = nodeHealth(addr);
    const status = !h ? '<span class="badge">unknown</span>' : h.state === "ok" ? '<span class="badge ok">answering</span>' : `<span class="badge bad" title="${esc(h.error)}">${esc(h.state === "down" ? "not answering" : h.state)}</span>`;
    const conns = (n.remote_addresses || []).length;
    const inconsistent = lookupdCol && conns !== CONFIG.lookupd.length;
    const topics = (n.topics || []).map((t) => `<a data-link class="badge link${t.tombstoned ? " warn" : ""}" href="${esc(href("topics", t.topic))}"${t.tombstoned ? ' title="tombstoned on this node"' : ""}>${esc(t.topic)}</a>`).join("");
    html += `<tr data-node="${esc(addr)}"${h && h.state !== "ok" ? ' class="row-bad"' : n.out_of_date ? ' class="row-warn"' : ""}><td>${status}</td><td>${esc(n.hostname)}</td><td>${link(addr, href("nodes", addr))}</td><td class="num">${esc(n.tcp_port)}</td><td class="num">${esc(n.http_port)}</td><td class="num">${rate(nodeRate(addr))}</td>
      <td>${esc(n.version)}${n.out_of_date ? ' <span class="badge warn">out of date</span>' : ""}</td>
      ${lookupdCol ? `<td class="num"><span class="badge${inconsistent ? " warn" : ""}" title="${esc((n.remote_addresses || []).join("\n"))}">${conns} / ${CONFIG.lookupd.length}</span></td>` : ""}
      <td class="wrap">${topics || '<span class="muted">none</span>'}</td></tr>`;
  }
  for (const h of missing) {
    html += `<tr data-node="${esc(h.node)}" class="row-bad"><td><span class="badge bad">${esc(h.state === "gone" ? "gone" : "not answering")}</span></td><td>${esc(h.hostname || "?")}</td><td>${esc(h.node)}</td><td class="num">–</td><td class="num">–</td><td class="num">–</td><td>${esc(h.version || "")}</td>${lookupdCol ? '<td class="num">–</td>' : ""}<td class="wrap muted">last seen ${esc(ago(h.last_seen_ms))}</td></tr>`;
  }
  return html + "</tbody></table></div>";
};

pages.node = (data, [node]) => {
  const topics = data.topics || [];
  const h = nodeHealth(node);
  let html = `<div class="crumbs">${link("Nodes", BASE + "nodes")}<span class="sep">/</span>${esc(node)}</div>`;
  html += `<div class="page-head"><h1>${healthDot(node)}${esc(node)}</h1></div>`;
  html += warningBox(data.message);
  html += `<div class="cards"><div class="card"><div class="label">Topics</div><div class="value">${num(topics.length)}</div></div>
    <div class="card"><div class="label">Messages</div><div class="value">${num(data.total_messages)}</div></div>
    <div class="card"><div class="label">Clients</div><div class="value">${num(data.total_clients)}</div></div>
    <div class="card${h && h.state !== "ok" ? " bad" : ""}"><div class="label">Status</div><div class="value"><small>${h ? esc(h.state === "ok" ? "answering" : h.state + ": " + h.error) : "unknown"}</small></div></div></div>`;
  if (!topics.length) return html + '<div class="empty">No topics on this nsqd.</div>';
  for (const t of topics) {
    const tomb = CONFIG.is_admin && CONFIG.lookupd.length ? `<button class="icon-btn" title="Tombstone this topic on this nsqd" data-action="tombstone" data-topic="${esc(t.topic_name)}" data-node="${esc(node)}">✕</button>` : "";
    html += `<h2>${tomb}${link(t.topic_name, href("topics", t.topic_name))}${pausedBadge(t.paused)} <span class="muted">· depth ${num(t.depth)} (${num(t.memory_depth)} + ${num(t.backend_depth)}) · ${num(t.message_count)} messages</span></h2>`;
    const chans = t.channels || [];
    if (!chans.length) {
      html += '<div class="empty">No channels.</div>';
      continue;
    }
    html += `<div class="table-wrap"><table><thead><tr><th>Channel</th><th class="num">Depth</th><th class="num">Memory + Disk</th><th class="num">In-flight</th><th class="num">Deferred</th><th class="num">Requeued</th><th class="num">Timed out</th><th class="num">Messages</th><th class="num">Clients</th></tr></thead><tbody>`;
    for (const c of chans) {
      html += `<tr><td class="name">${link(c.channel_name, href("topics", t.topic_name, c.channel_name))}${pausedBadge(c.paused)}</td><td class="num">${num(c.depth)}</td><td class="num">${num(c.memory_depth)} + ${num(c.backend_depth)}</td><td class="num">${num(c.in_flight_count)}</td><td class="num">${num(c.deferred_count)}</td><td class="num">${num(c.requeue_count)}</td><td class="num">${num(c.timeout_count)}</td><td class="num">${num(c.message_count)}</td><td class="num">${num((c.clients || []).length)}</td></tr>`;
      for (const cl of c.clients || []) {
        const facts = [
          `in-flight <strong>${num(cl.in_flight_count)}</strong>`,
          `ready <strong>${num(cl.ready_count)}</strong>`,
          `finished <strong>${num(cl.finish_count)}</strong>`,
          `requeued <strong>${num(cl.requeue_count)}</strong>`,
          `connected ${duration(cl.connected)}`,
        ].join('<span class="sep">·</span>');
        html += `<tr class="nested"><td colspan="9" class="wrap"><span class="muted">↳</span> ${esc(cl.hostname || cl.remote_address)} <span class="muted mono">${esc(cl.remote_address)}</span> <span class="mono">${esc(cl.user_agent)}</span> ${clientAttributes(cl)}<span class="client-facts">${facts}</span></td></tr>`;
      }
    }
    html += "</tbody></table></div>";
  }
  return html;
};

pages.counter = (data) => {
  const total = Object.values(data.stats || {}).reduce((n, s) => n + s.message_count, 0);
  const now = Date.now();
  let r = null;
  const prev = state.lastCounter;
  if (prev && now > prev.at && total >= prev.total) r = ((total - prev.total) * 1000) / (now - prev.at);
  if (!prev || now - prev.at > 2000) state.lastCounter = { at: now, total, rate: r !== null ? r : prev && prev.rate };
  let shown = r !== null ? r : prev ? prev.rate : null;
  // The sampler's rate, summed over channels, when it has one.
  if (state.summary && state.summary.topics) {
    const rates = state.summary.topics.flatMap((t) => t.channels.map((c) => c.rate)).filter((x) => x !== null);
    if (rates.length) shown = rates.reduce((a, b) => a + b, 0);
  }
  const history = [];
  if (state.summary && state.summary.topics) {
    const len = Math.max(0, ...state.summary.topics.flatMap((t) => t.channels.map((c) => c.rate_history.length)));
    for (let i = 0; i < len; i++) {
      let sum = null;
      for (const t of state.summary.topics) for (const c of t.channels) {
        const v = c.rate_history[c.rate_history.length - len + i];
        if (v !== undefined && v !== null) sum = (sum || 0) + v;
      }
      history.push(sum);
    }
  }
  return `${warningBox(data.message)}<div class="counter"><div class="big" id="counter-total">${num(total)}</div><div class="what">messages delivered to channels</div>
    <div class="rate">${shown !== null && shown !== undefined ? rate(shown) : '<span class="muted">measuring rate…</span>'}</div>
    ${spark(history, { w: 560, h: 70, label: "messages per second", fmt: fmtRate })}</div>`;
};

pages.lookup = (data) => {
  let html = `<div class="page-head"><div><h1>Lookup</h1><p class="sub">Topics and channels the nsqlookupd know, and creating new ones before their producers and consumers exist.</p></div></div>`;
  html += warningBox(data.message);
  if (!CONFIG.lookupd.length) {
    html += `<div class="alert info">nsqadmin watches nsqd directly (${CONFIG.nsqd.map(esc).join(", ")}), without nsqlookupd. Topics and channels created here are created on every one of them.</div>`;
  } else {
    html += `<h2>nsqlookupd</h2><div class="table-wrap"><table><tbody>${CONFIG.lookupd.map((l) => `<tr><td class="mono">${esc(l)}</td></tr>`).join("")}</tbody></table></div>`;
  }
  html += '<div class="grid2">';
  if (CONFIG.lookupd.length) {
    const topics = Object.keys(data.topics || {}).sort();
    html += '<div><h2>Inactive topics</h2><div class="panel" id="inactive">';
    if (!topics.length) html += '<p class="muted">None: every topic the nsqlookupd know has a producer.</p>';
    else {
      html += '<p class="muted">Known to nsqlookupd, but no nsqd has them.</p><ul class="tree">';
      for (const t of topics) {
        const del = CONFIG.is_admin ? `<button class="icon-btn" title="Delete topic" data-action="delete" data-topic="${esc(t)}">✕</button>` : "";
        html += `<li>${del}${link(t, href("topics", t))}<ul class="tree">`;
        for (const c of data.topics[t] || []) {
          const delc = CONFIG.is_admin ? `<button class="icon-btn" title="Delete channel" data-action="delete" data-topic="${esc(t)}" data-channel="${esc(c)}">✕</button>` : "";
          html += `<li>${delc}${esc(c)}</li>`;
        }
        html += "</ul></li>";
      }
      html += "</ul>";
    }
    html += "</div></div>";
  }
  if (CONFIG.is_admin) {
    html += `<div><h2>Create a topic or channel</h2><form class="panel" id="create-form"><p class="muted">Set up a topic (and a channel) before the services that use it are deployed. Leave the channel empty to create only the topic.</p>
      <div class="form-row"><input type="text" id="create-topic" name="topic" placeholder="Topic name" required><input type="text" id="create-channel" name="channel" placeholder="Channel name (optional)"><button class="btn btn-primary" type="submit" id="create-submit">Create</button></div></form></div>`;
  }
  return html + "</div>";
};

// ------------------------------------------------------------ actions

function bindPage() {
  const filter = document.getElementById("topic-filter");
  if (filter) {
    filter.oninput = () => {
      state.filter = filter.value;
      draw();
    };
  }
  const form = document.getElementById("create-form");
  if (form) {
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const topic = document.getElementById("create-topic").value.trim();
      const channel = document.getElementById("create-channel").value.trim();
      try {
        const r = await api("POST", "api/topics", { topic, channel });
        toast((channel ? `Created ${topic} / ${channel}` : `Created ${topic}`) + (r.message ? " — " + r.message : ""), !!r.message);
        document.getElementById("create-topic").value = "";
        document.getElementById("create-channel").value = "";
        refresh();
      } catch (e) {
        toast("Could not create: " + e.message, true);
      }
    };
  }
}

let toastTimer = null;
function toast(text, bad) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = "toast" + (bad ? " bad" : "");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), bad ? 8000 : 3500);
}

function confirmDialog(title, text, okLabel) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dlg.onclose = () => resolve(dlg.returnValue === "ok");
    dlg.returnValue = "";
    dlg.showModal();
  });
}

async function runAction(d) {
  const { action, topic, channel, node } = d;
  const what = channel !== undefined ? `channel ${topic} / ${channel}` : `topic ${topic}`;
  const path = "api/topics/" + encodeURIComponent(topic) + (channel !== undefined ? "/" + encodeURIComponent(channel) : "");
  const texts = {
    pause: [`Pause ${what}?`, `Consumers stop receiving its messages on every nsqd until it is unpaused; messages keep queueing.`, "Pause"],
    unpause: [`Unpause ${what}?`, `Its messages flow to consumers again on every nsqd.`, "Unpause"],
    empty: [`Empty ${what}?`, `Every queued message of it is deleted on every nsqd. This cannot be undone.`, "Empty"],
    delete: [`Delete ${what}?`, channel !== undefined ? "The channel and its queued messages are deleted from every nsqd and nsqlookupd." : "The topic, its channels and all their queued messages are deleted from every nsqd and nsqlookupd.", "Delete"],
    tombstone: [`Tombstone topic ${topic} on ${node}?`, `Consumers stop discovering ${topic} on this nsqd, and the topic is deleted from it. Other nsqd keep theirs.`, "Tombstone"],
  };
  const [title, text, ok] = texts[action];
  if (!(await confirmDialog(title, text, ok))) return;
  try {
    let r;
    if (action === "delete") r = await api("DELETE", path);
    else if (action === "tombstone") r = await api("DELETE", "api/nodes/" + encodeURIComponent(node), { topic });
    else r = await api("POST", path, { action });
    const done = { pause: "Paused", unpause: "Unpaused", empty: "Emptied", delete: "Deleted", tombstone: "Tombstoned" }[action];
    toast(`${done} ${action === "tombstone" ? topic + " on " + node : what}` + (r.message ? " — " + r.message : ""), !!r.message);
    if (action === "delete" && (state.page.name === "topic" || state.page.name === "channel")) {
      navigate(channel !== undefined ? href("topics", topic) : BASE, true);
      return;
    }
    refresh();
  } catch (e) {
    toast(`Could not ${action} ${what}: ${e.message}`, true);
  }
}

// ------------------------------------------------------------ live updates

function setLive(on, text) {
  const el = document.getElementById("live");
  el.className = "live " + (on ? "on" : "off");
  el.textContent = text;
}

function onSummary(summary) {
  state.summary = summary;
  const at = summary.time_ms ? new Date(summary.time_ms).toLocaleTimeString() : "";
  setLive(true, at ? "live · " + at : "live");
  draw();
  refresh();
}

function startLive() {
  if (!CONFIG.sample_interval_ms) {
    setLive(false, "refreshing every 10s");
    setInterval(refresh, 10000);
    return;
  }
  const source = new EventSource(BASE + "api/events");
  source.addEventListener("summary", (ev) => {
    try {
      onSummary(JSON.parse(ev.data));
    } catch (e) {
      console.error(e);
    }
  });
  source.onerror = () => setLive(false, "reconnecting…");
}

document.getElementById("version").textContent = "v" + CONFIG.version;
navigate(location.href, false);
startLive();
