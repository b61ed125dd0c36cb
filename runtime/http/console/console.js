// firebox console: a single page over the native API (/v1). No framework, no build step.
// API data is always written with textContent (never as HTML); the key lives in this
// tab's sessionStorage and goes out only as the Authorization header of /v1 calls.
"use strict";

const KEY = "firebox.key";
const main = () => document.getElementById("main");
let pageController = null; // aborts the current page's log stream and timers
let pageTimers = [];

// --- helpers ---------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.classList.add("show");
  setTimeout(() => t.classList.remove("show"), 2500);
}

function key() {
  return sessionStorage.getItem(KEY);
}

class ApiError extends Error {
  constructor(status, type, message) {
    super(`${type}: ${message}`);
    this.status = status;
    this.type = type;
  }
}

async function api(method, path, body, options = {}) {
  const headers = { Authorization: `Bearer ${key()}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  Object.assign(headers, options.headers || {});
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: options.signal,
  });
  if (options.raw) return response;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && !options.signin) signOut("Your key was refused; sign in again.");
    throw new ApiError(response.status, error.type || `HTTP ${response.status}`, error.message || text);
  }
  return data;
}

const enc = encodeURIComponent;
const when = (ts) => (ts ? new Date(ts * 1000).toLocaleString() : "");
const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`);

function table(headers, rows, empty = "none") {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : "" }, h.label || h)))),
      el(
        "tbody",
        {},
        rows.map((r) => el("tr", {}, r.map((c, i) => el("td", { class: headers[i].num ? "num" : "" }, c)))),
      ),
    ),
  );
}

function card(title, ...children) {
  return el("section", { class: "card" }, el("h2", {}, title), ...children);
}

function errorBox(error) {
  return el("p", { class: "error" }, String(error.message || error));
}

function every(ms, fn) {
  pageTimers.push(setInterval(fn, ms));
}

// --- sign in -------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY);
  location.hash = "#/signin";
  if (message) toast(message);
}

function renderSignIn() {
  document.getElementById("nav").hidden = true;
  const id = el("input", { id: "key-id", autocomplete: "username", placeholder: "FBK... or the admin key id", required: true });
  const secret = el("input", { id: "key-secret", type: "password", autocomplete: "current-password", required: true });
  const problem = el("p", { class: "error", id: "signin-error" });
  const form = el(
    "form",
    {
      class: "card signin",
      id: "signin",
      onsubmit: async (event) => {
        event.preventDefault();
        problem.textContent = "";
        sessionStorage.setItem(KEY, `${id.value.trim()}:${secret.value.trim()}`);
        try {
          await api("GET", "/v1/functions?limit=1", undefined, { signin: true });
          if (location.hash === "#/functions") route();
          else location.hash = "#/functions";
        } catch (error) {
          sessionStorage.removeItem(KEY);
          problem.textContent = error.message;
        }
      },
    },
    el("h2", {}, "Sign in"),
    el("p", { class: "muted" }, "With an access key of this node (firebox keys create, or the admin key in credentials.json)."),
    el("label", { for: "key-id" }, "Access key id"),
    id,
    el("label", { for: "key-secret" }, "Secret"),
    secret,
    el("button", { class: "primary", type: "submit", id: "signin-submit" }, "Sign in"),
    problem,
  );
  main().replaceChildren(form);
  id.focus();
}

// --- functions -------------------------------------------------------------------------

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function deployCard(onDone) {
  const manifest = el("textarea", { id: "deploy-manifest", rows: 6, spellcheck: "false" }, 'name = "hello"\nmemory = 64\ntimeout = 3.0\n');
  const code = el("input", { id: "deploy-code", type: "file", accept: ".wasm,.zip" });
  const result = el("p", { id: "deploy-result" });
  return card(
    "Deploy",
    el("p", { class: "muted" }, "A firebox.toml and its code: a core module (.wasm) or a Python bundle (.zip, as `firebox build` makes it)."),
    el("label", { for: "deploy-manifest" }, "Manifest (firebox.toml)"),
    manifest,
    el("label", { for: "deploy-code" }, "Code"),
    code,
    el(
      "button",
      {
        class: "primary",
        id: "deploy-submit",
        onclick: async () => {
          result.className = "";
          result.textContent = "Deploying…";
          try {
            const file = code.files[0];
            if (!file) throw new Error("choose the code file first");
            const body = { manifest: manifest.value, code_base64: toBase64(await file.arrayBuffer()) };
            const fn = await api("POST", "/v1/functions", body);
            result.textContent = `Deployed ${fn.name} (${fn.runtime}, revision ${fn.revision}).`;
            onDone(fn);
          } catch (error) {
            result.className = "error";
            result.textContent = error.message;
          }
        },
      },
      "Deploy",
    ),
    result,
  );
}

async function renderFunctions() {
  const list = el("div", { id: "functions-list" }, el("p", { class: "muted" }, "Loading…"));
  const load = async () => {
    try {
      const data = await api("GET", "/v1/functions?limit=1000");
      list.replaceChildren(
        table(
          ["Name", "Runtime", { label: "Memory", num: true }, { label: "Timeout", num: true }, "Triggers", "Updated"],
          data.functions.map((f) => [
            el("a", { href: `#/functions/${enc(f.name)}`, class: "fn-link" }, f.name),
            f.runtime,
            `${f.config.memory ?? ""} MB`,
            `${f.config.timeout ?? ""} s`,
            (f.config.triggers || []).map((t) => `${(t.methods || []).join(",")} ${t.route}`).join("  "),
            when(f.updated_at),
          ]),
          "No functions yet: deploy one below, or with `firebox deploy`.",
        ),
      );
    } catch (error) {
      list.replaceChildren(errorBox(error));
    }
  };
  main().replaceChildren(el("h1", {}, "Functions"), card("Deployed", list), deployCard(load));
  await load();
}

const SAMPLES = {
  "Empty object": {},
  "Hello": { name: "world" },
  "API Gateway (HTTP API v2)": {
    version: "2.0",
    routeKey: "POST /hello",
    rawPath: "/hello",
    rawQueryString: "",
    headers: { "content-type": "application/json" },
    requestContext: { http: { method: "POST", path: "/hello", sourceIp: "127.0.0.1" }, stage: "$default" },
    body: '{"name": "world"}',
    isBase64Encoded: false,
  },
  "SQS batch": {
    Records: [
      {
        messageId: "059f36b4-87a3-44ab-83d2-661975830a7d",
        receiptHandle: "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        body: "test",
        attributes: { ApproximateReceiveCount: "1" },
        messageAttributes: {},
        eventSource: "aws:sqs",
      },
    ],
  },
  "Scheduled event": {
    version: "0",
    "detail-type": "Scheduled Event",
    source: "aws.events",
    time: "2026-01-01T00:00:00Z",
    detail: {},
  },
};

function invokeCard(name) {
  const sample = el("select", { id: "invoke-sample" }, Object.keys(SAMPLES).map((k) => el("option", { value: k }, k)));
  const event = el("textarea", { id: "invoke-event", rows: 8, spellcheck: "false" }, JSON.stringify(SAMPLES["Empty object"], null, 2));
  sample.addEventListener("change", () => {
    event.value = JSON.stringify(SAMPLES[sample.value], null, 2);
  });
  const qualifier = el("input", { id: "invoke-qualifier", placeholder: "$LATEST" });
  const status = el("p", { id: "invoke-status", class: "muted" });
  const output = el("pre", { id: "invoke-output", hidden: true });
  const tail = el("pre", { id: "invoke-log", hidden: true });
  const run = async () => {
    status.className = "muted";
    status.textContent = "Invoking…";
    try {
      JSON.parse(event.value);
    } catch (error) {
      status.className = "error";
      status.textContent = `The event is not JSON: ${error.message}`;
      return;
    }
    const q = qualifier.value.trim();
    const path = `/v1/functions/${enc(name)}/invoke?log=tail${q ? `&qualifier=${enc(q)}` : ""}`;
    const response = await api("POST", path, event.value, { raw: true });
    const text = await response.text();
    const h = (n) => response.headers.get(n) || "";
    const ok = response.ok;
    status.className = "";
    status.replaceChildren(
      el("span", { class: ok ? "pill ok" : "pill err" }, `${response.status}`),
      ` version ${h("x-firebox-executed-version")} · ${h("x-firebox-duration-ms")} ms · ${h("x-firebox-warm") === "true" ? "warm" : "cold"}`,
    );
    let shown = text;
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {}
    output.textContent = shown;
    output.hidden = false;
    const log = h("x-firebox-log-result");
    tail.textContent = log ? new TextDecoder().decode(Uint8Array.from(atob(log), (c) => c.charCodeAt(0))) : "(no log output)";
    tail.hidden = false;
  };
  return card(
    "Test invoke",
    el("div", { class: "row" }, el("div", {}, el("label", { for: "invoke-sample" }, "Sample event"), sample), el("div", {}, el("label", { for: "invoke-qualifier" }, "Version or alias"), qualifier)),
    el("label", { for: "invoke-event" }, "Event (JSON)"),
    event,
    el("button", { class: "primary", id: "invoke-submit", onclick: () => run().catch((e) => { status.className = "error"; status.textContent = e.message; }) }, "Invoke"),
    status,
    el("label", {}, "Response"),
    output,
    el("label", {}, "Log"),
    tail,
  );
}

async function followLogs(path, into, signal) {
  // NDJSON records as invocations happen; reconnects until the page is left.
  const MAX_LINES = 2000;
  while (!signal.aborted) {
    try {
      const response = await api("GET", path, undefined, { raw: true, signal });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 1);
          if (!line.trim()) continue;
          const record = JSON.parse(line);
          const atEnd = into.scrollTop + into.clientHeight >= into.scrollHeight - 4;
          into.append(document.createTextNode(record.text));
          while (into.childNodes.length > MAX_LINES) into.firstChild.remove();
          if (atEnd) into.scrollTop = into.scrollHeight;
          into.dataset.records = String(Number(into.dataset.records || 0) + 1);
        }
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// --- charts -----------------------------------------------------------------------------

const BUCKET_S = 30;
const WINDOW_S = 15 * 60;

function percentile(sorted, q) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function buckets(records, now) {
  const count = WINDOW_S / BUCKET_S;
  const start = Math.floor(now / BUCKET_S) * BUCKET_S - (count - 1) * BUCKET_S;
  const out = Array.from({ length: count }, (_, i) => ({ t: start + i * BUCKET_S, n: 0, errors: 0, throttles: 0, cold: 0, d: [] }));
  for (const r of records) {
    const i = Math.floor((r.ts - start) / BUCKET_S);
    if (i < 0 || i >= count) continue;
    const b = out[i];
    b.n += 1;
    if (r.outcome === "error") b.errors += 1;
    if (r.outcome === "throttled") b.throttles += 1;
    if (r.cold) b.cold += 1;
    if (r.outcome !== "throttled" && r.billed_ms > 0) b.d.push(r.duration_ms);
  }
  for (const b of out) {
    b.d.sort((x, y) => x - y);
    b.p50 = percentile(b.d, 0.5);
    b.p95 = percentile(b.d, 0.95);
    b.p99 = percentile(b.d, 0.99);
  }
  return out;
}

function chart(id, title, data, series, kind, unit) {
  const W = 300, H = 120, L = 46, B = 16, T = 6;
  const max = Math.max(1, ...series.flatMap((s) => data.map((d) => d[s.key])));
  const x = (i) => L + (i * (W - L - 4)) / data.length;
  const y = (v) => H - B - ((H - B - T) * v) / max;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.append(svgEl("line", { x1: L, y1: H - B, x2: W - 2, y2: H - B, stroke: "#dde1e7" }));
  for (const v of [max, max / 2]) {
    svg.append(svgEl("line", { x1: L, y1: y(v), x2: W - 2, y2: y(v), stroke: "#eef0f3" }));
    const label = svgEl("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 9, fill: "#5d6778" });
    label.textContent = unit === "ms" ? fmtMs(v) : Number.isInteger(v) ? String(v) : v.toFixed(1);
    svg.append(label);
  }
  const w = (W - L - 4) / data.length;
  series.forEach((s, si) => {
    const color = ["#1c7ed6", "#c92a2a", "#d9480f", "#2b8a3e"][si];
    if (kind === "bars") {
      const bw = Math.max(1, (w - 1) / series.length);
      data.forEach((d, i) => {
        if (!d[s.key]) return;
        svg.append(svgEl("rect", { x: x(i) + si * bw, y: y(d[s.key]), width: bw, height: H - B - y(d[s.key]), fill: color }));
      });
    } else {
      const points = data.map((d, i) => `${x(i) + w / 2},${y(d[s.key])}`).join(" ");
      svg.append(svgEl("polyline", { points, fill: "none", stroke: color, "stroke-width": 1.5 }));
    }
  });
  const first = svgEl("text", { x: L, y: H - 3, "font-size": 9, fill: "#5d6778" });
  first.textContent = "-15 min";
  const last = svgEl("text", { x: W - 2, y: H - 3, "font-size": 9, fill: "#5d6778", "text-anchor": "end" });
  last.textContent = "now";
  svg.append(first, last);
  const total = data.reduce((sum, d) => sum + d[series[0].key], 0);
  return el(
    "div",
    { class: "card chart", id, "data-total": unit === "ms" ? Math.round(Math.max(...data.map((d) => d[series[0].key]))) : total },
    el("h2", {}, title),
    svg,
    el("div", { class: "legend" }, series.map((s, si) => el("span", { class: `s${si}` }, s.label))),
  );
}

async function drawCharts(name, into) {
  const now = Date.now() / 1000;
  const data = await api("GET", `/v1/functions/${enc(name)}/usage?records=1&since=${now - WINDOW_S}`);
  const b = buckets(data.records || [], now);
  into.replaceChildren(
    chart("chart-invocations", "Invocations and errors", b, [{ key: "n", label: "invocations" }, { key: "errors", label: "errors" }, { key: "throttles", label: "throttled" }], "bars"),
    chart("chart-duration", "Duration", b, [{ key: "p50", label: "p50" }, { key: "p95", label: "p95" }, { key: "p99", label: "p99" }], "lines", "ms"),
    chart("chart-cold", "Cold starts", b, [{ key: "cold", label: "cold starts" }], "bars"),
  );
}

// --- one function ------------------------------------------------------------------

function configTable(config) {
  const rows = Object.entries(config)
    .filter(([k]) => k !== "triggers" && k !== "environment")
    .map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]);
  const env = Object.entries(config.environment || {}).map(([k, v]) => [k, v]);
  return el("div", {}, table(["Setting", "Value"], rows), env.length ? el("div", {}, el("label", {}, "Environment"), table(["Name", "Value"], env)) : null);
}

async function renderFunction(name) {
  const signal = pageController.signal;
  main().replaceChildren(el("h1", {}, name), el("p", { class: "muted" }, "Loading…"));
  let fn, mappings, schedules, eventConfig;
  try {
    [fn, mappings, schedules, eventConfig] = await Promise.all([
      api("GET", `/v1/functions/${enc(name)}`),
      api("GET", `/v1/event-source-mappings?function=${enc(name)}`).catch(() => ({ event_source_mappings: [] })),
      api("GET", "/v1/schedules").catch(() => ({ schedules: [] })),
      api("GET", `/v1/functions/${enc(name)}/event-invoke-config`).catch(() => null),
    ]);
  } catch (error) {
    main().replaceChildren(el("h1", {}, name), errorBox(error));
    return;
  }
  const triggers = (fn.config.triggers || []).map((t) => ["HTTP", `${(t.methods || []).join(", ")} ${t.route}`, t.export || "", t.auth || "none"]);
  for (const m of mappings.event_source_mappings || mappings.mappings || []) {
    triggers.push(["Mapping", m.source, m.qualifier || "$LATEST", m.enabled ? "enabled" : "disabled"]);
  }
  for (const s of (schedules.schedules || []).filter((s) => s.function === name)) {
    triggers.push(["Schedule", s.expression, s.qualifier || "$LATEST", s.enabled ? "enabled" : "disabled"]);
  }
  const charts = el("div", { class: "charts", id: "charts" });
  const logs = el("pre", { id: "log-tail", "data-records": "0" });
  main().replaceChildren(
    el("h1", {}, fn.name, " ", el("span", { class: "pill" }, fn.runtime)),
    el("p", { class: "muted" }, `revision ${fn.revision} · digest ${String(fn.digest || "").slice(0, 19)} · updated ${when(fn.updated_at)}`, fn.description ? ` · ${fn.description}` : ""),
    charts,
    el("div", { class: "grid" }, invokeCard(name), card("Live log", el("p", { class: "muted" }, "Every invocation's log as it happens (START, the function's output, END, REPORT)."), logs)),
    el(
      "div",
      { class: "grid" },
      card("Configuration", configTable(fn.config)),
      card(
        "Versions",
        table(["Version", "Description", "Created"], [["$LATEST", "", when(fn.updated_at)], ...fn.versions.map((v) => [v.version, v.description, when(v.created_at)])]),
      ),
      card(
        "Aliases",
        table(["Alias", "Version", "Routing"], fn.aliases.map((a) => [a.name, a.version, a.routing ? Object.entries(a.routing).map(([v, w]) => `${v}: ${w}`).join(", ") : ""]), "no aliases"),
      ),
      card("Triggers", table(["Kind", "Source", "Target", "State"], triggers, "invoked directly only")),
      card("Instances", table(["Ready", "Leased", "Cold starts", "Warm starts"].map((label) => ({ label, num: true })), [[fn.pool.ready, fn.pool.leased, fn.pool.cold_starts, fn.pool.warm_starts]])),
      eventConfig ? card("Async invocation", el("pre", { class: "config" }, JSON.stringify(eventConfig, null, 2))) : null,
    ),
  );
  const redraw = () => drawCharts(name, charts).catch((e) => charts.replaceChildren(errorBox(e)));
  await redraw();
  every(3000, redraw);
  const since = Date.now() / 1000 - 300;
  followLogs(`/v1/functions/${enc(name)}/logs?follow=1&since=${since}&limit=200`, logs, signal);
}

// --- queues and mappings -----------------------------------------------------------

async function renderQueues() {
  const queues = el("div", { id: "queues-list" }, el("p", { class: "muted" }, "Loading…"));
  const mappings = el("div", { id: "mappings-list" }, el("p", { class: "muted" }, "Loading…"));
  main().replaceChildren(el("h1", {}, "Queues & mappings"), card("Queues", queues), card("Event source mappings", mappings));
  const load = async () => {
    try {
      const names = (await api("GET", "/v1/queues")).queues || [];
      const details = await Promise.all(names.map((n) => api("GET", `/v1/queues/${enc(n)}`).catch(() => null)));
      const depth = {};
      queues.replaceChildren(
        table(
          ["Queue", { label: "Visible", num: true }, { label: "In flight", num: true }, { label: "Delayed", num: true }, { label: "Oldest", num: true }, { label: "Dead-lettered", num: true }, "Dead-letter queue"],
          details.filter(Boolean).map((q) => {
            depth[q.name] = q.stats.depth;
            return [q.name, q.stats.depth, q.stats.in_flight, q.stats.delayed, `${q.stats.oldest_age_s.toFixed(0)} s`, q.stats.dead_lettered, q.attributes.dead_letter_queue || ""];
          }),
          "No queues.",
        ),
      );
      const data = await api("GET", "/v1/event-source-mappings");
      const list = data.event_source_mappings || data.mappings || [];
      mappings.replaceChildren(
        table(
          ["Function", "Source", { label: "Depth", num: true }, "State", "Last result", { label: "Batch", num: true }],
          list.map((m) => {
            const queue = String(m.source).startsWith("queue:") ? String(m.source).slice(6) : null;
            return [
              el("a", { href: `#/functions/${enc(m.function)}` }, m.function),
              m.source,
              queue !== null && queue in depth ? depth[queue] : "",
              m.enabled ? (m.polling ? "polling" : "enabled") : "disabled",
              m.last_processing_result || "",
              m.config?.batch_size ?? m.batch_size ?? "",
            ];
          }),
          "No mappings.",
        ),
      );
    } catch (error) {
      queues.replaceChildren(errorBox(error));
    }
  };
  await load();
  every(3000, load);
}

// --- keys -------------------------------------------------------------------------

async function renderKeys() {
  const list = el("div", { id: "keys-list" });
  const created = el("div", { id: "key-created" });
  const description = el("input", { id: "key-description", placeholder: "what this key is for" });
  const load = async () => {
    try {
      const data = await api("GET", "/v1/keys");
      list.replaceChildren(
        table(
          ["Key id", "Description", "Created", "State", ""],
          data.keys.map((k) => [
            k.access_key_id,
            k.description,
            when(k.created_at),
            k.admin ? "admin" : k.revoked_at ? `revoked ${when(k.revoked_at)}` : "live",
            k.admin || k.revoked_at
              ? ""
              : el("button", { class: "danger", onclick: async () => {
                  if (!confirm(`Revoke ${k.access_key_id}?`)) return;
                  await api("DELETE", `/v1/keys/${enc(k.access_key_id)}`).catch((e) => toast(e.message));
                  load();
                } }, "Revoke"),
          ]),
        ),
      );
    } catch (error) {
      list.replaceChildren(errorBox(error));
    }
  };
  main().replaceChildren(
    el("h1", {}, "Access keys"),
    card("Keys", list),
    card(
      "Create a key",
      el("label", { for: "key-description" }, "Description"),
      description,
      el("button", { class: "primary", id: "key-create", onclick: async () => {
        try {
          const k = await api("POST", "/v1/keys", { description: description.value });
          created.replaceChildren(el("p", {}, "The secret is shown once; store it now:"), el("p", { class: "secret" }, `${k.access_key_id}:${k.secret_access_key}`));
          load();
        } catch (error) {
          created.replaceChildren(errorBox(error));
        }
      } }, "Create"),
      created,
    ),
  );
  await load();
}

// --- node -------------------------------------------------------------------------

async function renderNode() {
  main().replaceChildren(el("h1", {}, "Node"), el("p", { class: "muted" }, "Loading…"));
  try {
    const node = await api("GET", "/v1/node");
    main().replaceChildren(
      el("h1", {}, "Node"),
      card(
        "Workers",
        table(
          ["pid", { label: "RSS", num: true }, { label: "USS", num: true }, { label: "Pools", num: true }, { label: "Cache hits", num: true }],
          node.workers.map((w) => [w.pid, `${(w.rss / 2 ** 20).toFixed(0)} MiB`, `${(w.uss / 2 ** 20).toFixed(0)} MiB`, Object.keys(w.pools).length, w.cache.hits]),
        ),
        el("p", { class: "muted" }, `restarts ${node.restarts} · compiles at deploy ${node.compiles.deploy} · registry ${node.registry.url}`),
      ),
    );
  } catch (error) {
    main().replaceChildren(el("h1", {}, "Node"), errorBox(error));
  }
}

// --- routing -----------------------------------------------------------------------

function route() {
  if (pageController) pageController.abort();
  pageTimers.forEach(clearInterval);
  pageTimers = [];
  pageController = new AbortController();
  const hash = location.hash || "#/functions";
  if (!key()) {
    renderSignIn();
    return;
  }
  document.getElementById("nav").hidden = false;
  const [, page, arg] = hash.split("/");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  const pages = {
    functions: () => (arg ? renderFunction(decodeURIComponent(arg)) : renderFunctions()),
    queues: renderQueues,
    keys: renderKeys,
    node: renderNode,
    signin: renderSignIn,
  };
  (pages[page] || renderFunctions)().catch((error) => main().replaceChildren(errorBox(error)));
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
  route();
});
