// The playground: search, recommend, explanations and a rule editor wired
// to the dry-run endpoint. Plain DOM, no build step; every value from the
// server is set as text, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let last = null; // {kind: "search"|"recommend", body}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await r.json();
  if (!r.ok) {
    const e = data.error || {};
    throw new Error((e.field ? e.field + ": " : "") + (e.message || r.status));
  }
  return data;
}

function fmt(v) { return typeof v === "number" ? (Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4)) : String(v); }

function card(hit, pos, names, target) {
  const badges = [];
  if (hit.pinned) badges.push(el("span", { class: "badge pin" }, "pinned"));
  if (hit.explore) badges.push(el("span", { class: "badge explore" }, "explore"));
  for (const r of hit.rules || []) badges.push(el("span", { class: "badge" }, r));
  const c = el("div", { class: "card" },
    el("span", { class: "pos" }, "#" + (pos + 1)),
    el("div", { class: "title" }, hit.title),
    el("div", { class: "attrs" }, [hit.id, hit.brand, hit.category].filter(Boolean).join(" · ")),
    el("div", { class: "attrs" }, "price " + hit.price + " · score " + fmt(hit.score)),
    el("div", {}, ...badges),
    el("button", { class: "link explain-btn", type: "button", onclick: () => { select(target, c); explain(hit, pos, names); } }, "explain"));
  return c;
}

function select(target, c) {
  for (const x of target.querySelectorAll(".card.selected")) x.classList.remove("selected");
  c.classList.add("selected");
}

function render(target, res) {
  target.replaceChildren(...res.items.map((h, i) => card(h, i, res.feature_names || [], target)));
  $("bundle").textContent = "bundle " + res.bundle + (res.retrieval ? " · " + res.retrieval : "") +
    (res.degraded && res.degraded.length ? " · degraded: " + res.degraded.join(", ") : "");
}

// bar is a horizontal bar of width px; its width is set through the
// CSSOM, which the page's content security policy allows (a style
// attribute it would block).
function bar(px, negative) {
  const b = el("span", { class: "bar" + (negative ? " neg" : "") });
  b.style.width = Math.round(px) + "px";
  return b;
}

function explain(hit, pos, names) {
  const box = $("explain");
  const parts = [el("h3", {}, "#" + (pos + 1) + " " + hit.title)];
  const s = hit.sources || {};
  const src = [];
  if (s.lexical) src.push("lexical rank " + s.lexical.rank + " (" + fmt(s.lexical.score) + ")");
  if (s.dense) src.push("dense rank " + s.dense.rank + " (" + fmt(s.dense.score) + ")");
  if (s.exact_id) src.push("exact id match");
  parts.push(el("p", {}, "Sources: " + (src.join(", ") || "popular / history")));
  parts.push(el("p", {}, "Ranker score " + fmt(hit.ranker_score) + " (rank " + hit.ranker_rank + "), final score " + fmt(hit.score)));
  const ct = hit.contributions || {};
  if (ct.values) {
    const rows = names.map((n, i) => ({ n, v: (hit.features || [])[i], c: ct.values[i] }));
    rows.sort((a, b) => Math.abs(b.c) - Math.abs(a.c));
    const maxAbs = Math.max(1e-9, ...rows.map((r) => Math.abs(r.c)));
    const sum = ct.values.reduce((a, b) => a + b, ct.base);
    const table = el("table", { id: "contributions" },
      el("tr", {}, el("th", {}, "feature"), el("th", {}, "value"), el("th", {}, "contribution"), el("th", {}, "")));
    for (const r of rows) {
      table.append(el("tr", {}, el("td", {}, r.n), el("td", { class: "num" }, fmt(r.v)), el("td", { class: "num" }, fmt(r.c)),
        el("td", {}, bar(80 * Math.abs(r.c) / maxAbs, r.c < 0))));
    }
    parts.push(el("p", {}, ct.method + ": base " + fmt(ct.base) + " + contributions = " + fmt(sum)), table);
  } else if (ct.unavailable) {
    parts.push(el("p", { class: "muted" }, "Contributions unavailable: " + ct.unavailable));
  }
  const eff = hit.effects || [];
  parts.push(el("h4", {}, "Rules"));
  if (!eff.length) parts.push(el("p", { class: "muted" }, "No business rule changed this item."));
  for (const e of eff) {
    parts.push(el("p", {}, e.action + " " + e.rule + ": score " + fmt(e.score_before) + " → " + fmt(e.score_after) +
      ", position " + (e.position_before + 1) + " → " + (e.position_after + 1) + (e.note ? " (" + e.note + ")" : "")));
  }
  box.classList.remove("muted");
  box.replaceChildren(...parts);
}

function status(msg, isErr) {
  const s = $("status");
  s.textContent = msg;
  s.className = isErr ? "error" : "muted";
}

async function run(kind, body) {
  last = { kind, body };
  try {
    const t = performance.now();
    const res = await post("/v1/" + kind, Object.assign({ explain: true }, body));
    render($("results"), res);
    if (res.dropped && res.dropped.length) {
      status(res.items.length + " results in " + Math.round(performance.now() - t) + " ms; rules kept out: " +
        res.dropped.map((d) => d.id + " (" + d.rule + ": " + d.reason + ")").join(", "));
    } else {
      status(res.items.length + " results in " + Math.round(performance.now() - t) + " ms");
    }
  } catch (e) {
    status(e.message, true);
  }
}

function searchBody() {
  const b = { query: $("q").value, k: Number($("k").value) || 10 };
  if ($("mode").value) b.retrieval = $("mode").value;
  return b;
}

$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); run("search", searchBody()); });
$("rec-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const b = { k: Number($("k").value) || 10 };
  if ($("seed").value) b.seed_item = $("seed").value;
  if ($("user").value) b.user = { id: $("user").value };
  run("recommend", b);
});

$("dryrun-btn").addEventListener("click", async () => {
  const req = last || { kind: "search", body: searchBody() };
  const body = { rules: $("rules").value };
  body[req.kind] = req.body;
  try {
    const res = await post("/v1/rules/dry-run", body);
    render($("results"), res.live);
    render($("dry-results"), res.dry);
    const d = res.diff;
    $("diff").textContent = "added: " + (d.added.join(", ") || "none") + " · removed: " + (d.removed.join(", ") || "none") +
      " · moved: " + (d.moved.map((m) => m.id + " " + m.from + "→" + m.to).join(", ") || "none");
    $("dry-status").textContent = "dry run of " + req.kind;
    $("dry-status").className = "muted";
  } catch (e) {
    $("dry-status").textContent = e.message;
    $("dry-status").className = "error";
  }
});

$("rules").value = [
  "# This set replaces the live rules for the dry run, filters included.",
  "filters:",
  "  - name: available",
  "    expr: item.available",
  "  - name: age-rating",
  "    expr: user.age == 0 || item.age_rating <= user.age",
  "business:",
  "  - name: promo-pin",
  "    when: query != \"\"",
  "    action: pin",
  "    items: [item-0000042]",
  "    position: 1",
  "  - name: two-per-brand",
  "    action: cap",
  "    by: brand",
  "    max: 2",
  "",
].join("\n");
