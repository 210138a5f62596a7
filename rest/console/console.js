// mlog console: polls /v1/overview, renders brokers, topics (leaders,
// ISR, high watermarks, sizes), groups and lag, draws throughput from
// successive high watermarks, creates and deletes topics, tails a topic
// through a REST consumer instance.
"use strict";
const $ = (s) => document.querySelector(s);
const history = {}; // topic -> [{t, total}]
const colors = ["#2f6fdf", "#d0492a", "#2a9d55", "#8a4fd6", "#c28a00", "#17838f"];

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function bytes(n) {
  if (n < 0) return "?";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function rate(topic) {
  const h = history[topic] || [];
  if (h.length < 2) return 0;
  const a = h[h.length - 2], b = h[h.length - 1];
  return Math.max(0, (b.total - a.total) / ((b.t - a.t) / 1000));
}

function render(o) {
  $("#cluster").textContent = "cluster " + o.cluster_id + ", controller " + o.controller;
  $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  const bt = $("#brokers tbody");
  bt.replaceChildren(...o.brokers.map((b) => {
    const tr = document.createElement("tr");
    tr.append(cell(b.id), cell(b.host + ":" + b.port), cell(b.controller ? "controller" : "broker"));
    return tr;
  }));
  const now = Date.now();
  const tt = $("#topics tbody");
  const rows = [];
  const select = $("#tail select[name=topic]");
  const chosen = select.value;
  select.replaceChildren(...o.topics.map((t) => new Option(t.name, t.name)));
  if (chosen) select.value = chosen;
  for (const t of o.topics) {
    const total = t.partitions.reduce((s, p) => s + Math.max(p.high_watermark, 0), 0);
    (history[t.name] = history[t.name] || []).push({ t: now, total });
    while (history[t.name].length > 150) history[t.name].shift();
    t.partitions.forEach((p, i) => {
      const tr = document.createElement("tr");
      tr.dataset.topic = t.name;
      const underReplicated = p.isr.length < p.replicas.length;
      tr.append(cell(i === 0 ? t.name : ""), cell(p.partition, "num"), cell(p.leader, "num"),
        cell(p.replicas.join(",")), cell(p.isr.join(","), underReplicated ? "bad isr" : "isr"),
        cell(p.high_watermark, "num hw"), cell(bytes(p.size_bytes), "num"),
        cell(i === 0 ? rate(t.name).toFixed(1) : "", "num"));
      const del = document.createElement("td");
      if (i === 0) {
        const b = document.createElement("button");
        b.textContent = "Delete";
        b.onclick = () => deleteTopic(t.name);
        del.append(b);
      }
      tr.append(del);
      rows.push(tr);
    });
  }
  tt.replaceChildren(...rows);
  const gt = $("#groups tbody");
  gt.replaceChildren(...o.groups.map((g) => {
    const tr = document.createElement("tr");
    tr.dataset.group = g.group;
    tr.append(cell(g.group), cell(g.state), cell(g.members, "num"), cell(g.lag, "num lag"));
    return tr;
  }));
  drawChart(o.topics.map((t) => t.name));
}

function drawChart(names) {
  const svg = $("#chart");
  const series = names.map((n) => {
    const h = history[n] || [];
    const pts = [];
    for (let i = 1; i < h.length; i++) {
      pts.push({ t: h[i].t, r: Math.max(0, (h[i].total - h[i - 1].total) / ((h[i].t - h[i - 1].t) / 1000)) });
    }
    return { n, pts };
  });
  const max = Math.max(1, ...series.flatMap((s) => s.pts.map((p) => p.r)));
  const t1 = Date.now(), t0 = t1 - 5 * 60 * 1000;
  svg.replaceChildren(...series.map((s, i) => {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", colors[i % colors.length]);
    path.setAttribute("stroke-width", "2");
    path.setAttribute("points", s.pts.filter((p) => p.t >= t0)
      .map((p) => ((p.t - t0) / (t1 - t0) * 600).toFixed(1) + "," + (118 - p.r / max * 110).toFixed(1)).join(" "));
    return path;
  }));
  $("#legend").replaceChildren(...series.map((s, i) => {
    const span = document.createElement("span");
    span.style.color = colors[i % colors.length];
    span.textContent = s.n;
    return span;
  }));
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/vnd.kafka.v2+json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && data.message) || r.statusText);
  return data;
}

async function refresh() {
  try {
    render(await api("GET", "/v1/overview"));
    $("#error").textContent = "";
  } catch (e) {
    $("#error").textContent = "cannot reach the cluster: " + e.message;
  }
}

async function deleteTopic(name) {
  if (!confirm("Delete topic " + name + " and its data?")) return;
  try { await api("DELETE", "/v1/topics/" + encodeURIComponent(name)); } catch (e) { $("#error").textContent = e.message; }
  refresh();
}

$("#create").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = { name: f.get("name"), partitions: Number(f.get("partitions")) || 1 };
  if (f.get("replication_factor")) body.replication_factor = Number(f.get("replication_factor"));
  try { await api("POST", "/v1/topics", body); ev.target.reset(); } catch (e) { $("#error").textContent = e.message; }
  refresh();
};

let tailing = null;
async function stopTail() {
  if (!tailing) return;
  const t = tailing;
  tailing = null;
  try { await api("DELETE", "/consumers/console/instances/" + t); } catch (e) {}
}
$("#stop").onclick = stopTail;
$("#tail").onsubmit = async (ev) => {
  ev.preventDefault();
  await stopTail();
  const topic = new FormData(ev.target).get("topic");
  const name = "console-" + Math.random().toString(36).slice(2);
  try {
    await api("POST", "/consumers/console", { name, format: "binary", "auto.offset.reset": "latest" });
    await api("POST", "/consumers/console/instances/" + name + "/subscription", { topics: [topic] });
  } catch (e) { $("#error").textContent = e.message; return; }
  tailing = name;
  const out = $("#tailed");
  out.textContent = "tailing " + topic + "...\n";
  while (tailing === name) {
    try {
      const r = await fetch("/consumers/console/instances/" + name + "/records?timeout=1000",
        { headers: { Accept: "application/vnd.kafka.binary.v2+json" } });
      if (!r.ok) break;
      for (const rec of await r.json()) {
        const v = rec.value === null ? "null" : new TextDecoder().decode(Uint8Array.from(atob(rec.value), (c) => c.charCodeAt(0)));
        out.textContent += rec.partition + "/" + rec.offset + "  " + v + "\n";
        out.scrollTop = out.scrollHeight;
      }
    } catch (e) { break; }
  }
};

refresh();
setInterval(refresh, 2000);
