// tickshard live dashboard: reads the snapshot stream on /ws and renders
// it. Plain JavaScript and canvas, no dependencies, no build step.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const PALETTE = [
    "#4f9cff", "#36d399", "#f5b942", "#c084fc", "#f472b6", "#22d3ee",
    "#fb923c", "#a3e635", "#e879f9", "#60a5fa", "#fbbf24", "#2dd4bf",
    "#f87171", "#818cf8", "#34d399", "#facc15",
  ];
  const colors = new Map();
  let last = null;          // last snapshot
  let hover = { tp: null, lat: null };

  function ownerColor(id) {
    if (!colors.has(id)) colors.set(id, PALETTE[colors.size % PALETTE.length]);
    return colors.get(id);
  }

  // ---------- formatting ----------
  function fmtNum(v) {
    if (v == null || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 1e3) return (v / 1e3).toFixed(2) + "k";
    if (a >= 100 || v === Math.round(v)) return Math.round(v).toString();
    return v.toFixed(1);
  }
  function fmtInt(v) { return (v || 0).toLocaleString("en-US"); }
  function fmtUs(us) {
    if (us == null || !isFinite(us) || us <= 0) return "–";
    if (us < 1000) return Math.round(us) + " µs";
    if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + " ms";
    return (us / 1e6).toFixed(2) + " s";
  }
  // Axis labels of the log latency chart (powers of ten): "1 ms", not "1.00 ms".
  function fmtUsAxis(us) {
    if (us < 1000) return Math.round(us) + " µs";
    if (us < 1e6) return +(us / 1000).toPrecision(3) + " ms";
    return +(us / 1e6).toPrecision(3) + " s";
  }
  function fmtTime(ms) {
    const d = new Date(ms);
    return d.toTimeString().slice(0, 8);
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // ---------- connection ----------
  let backoff = 500;
  let ws = null;
  let lastFrameAt = 0;
  function setPill(el, state, text) {
    el.dataset.state = state;
    el.querySelector("span").textContent = text;
  }
  // A dashboard started with --auth-token is opened once as /?token=TOKEN;
  // the token is kept for the WebSocket URL (the server also sets a cookie).
  const authToken = new URLSearchParams(location.search).get("token");
  const withToken = (url) =>
    authToken ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(authToken) : url;
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    setPill($("conn"), last ? "reconnecting" : "connecting", last ? "reconnecting" : "connecting");
    try {
      ws = new WebSocket(withToken(proto + "//" + location.host + "/ws"));
    } catch (e) {
      schedule();
      return;
    }
    ws.onopen = () => { backoff = 500; setPill($("conn"), "live", "live"); };
    ws.onmessage = (ev) => {
      let snap;
      try { snap = JSON.parse(ev.data); } catch (e) { return; }
      if (!snap || snap.type !== "snapshot") return;
      lastFrameAt = Date.now();
      render(snap);
    };
    ws.onclose = () => { setPill($("conn"), "down", "offline"); schedule(); };
    ws.onerror = () => { try { ws.close(); } catch (e) { /* closed */ } };
  }
  function schedule() {
    const wait = backoff + Math.random() * 250;
    backoff = Math.min(backoff * 2, 5000);
    setTimeout(connect, wait);
  }
  setInterval(() => {
    $("clock").textContent = fmtTime(Date.now());
    if (ws && ws.readyState === 1 && lastFrameAt && Date.now() - lastFrameAt > 6000) {
      setPill($("conn"), "reconnecting", "stalled");
    }
  }, 500);

  // ---------- render ----------
  function render(s) {
    const prev = last;
    last = s;
    $("cluster").textContent = s.cluster || "cluster";
    const h = s.dashboard || {};
    setPill($("redis"), h.redis_connected ? "up" : "down", h.redis_connected ? "redis ok" : "redis down");
    for (const el of document.querySelectorAll(".demo-only")) el.hidden = !s.demo;

    // KPIs
    const alive = s.instances.filter((i) => i.alive).length;
    const P = s.partitions.length;
    const owned = s.partitions.filter((p) => p != null).length;
    $("k-ticks").textContent = fmtNum(s.ticks_per_s);
    $("k-applied").textContent = fmtNum(s.applied_per_s);
    $("k-fwd").textContent = (100 * (s.forward_ratio || 0)).toFixed(1) + "%";
    $("k-fwd-sub").textContent = fmtNum(s.forwarded_per_s) + " ticks/s forwarded";
    $("k-p99-label").textContent = "Latency p99 · " + windowName(s);
    $("k-p99").textContent = fmtUs(s.latency_us.p99);
    $("k-p50").textContent = "p50 " + fmtUs(s.latency_us.p50) + " · max " + fmtUs(s.latency_us.max);
    $("k-inst").textContent = alive;
    $("k-inst-sub").textContent = s.instances.length - alive > 0 ? (s.instances.length - alive) + " down" : "all alive";
    $("k-parts").textContent = owned + "/" + P;
    const sub = $("k-parts-sub");
    sub.textContent = P === 0 ? "no cluster config" : owned === P ? "all owned" : (P - owned) + " unowned";
    sub.className = owned === P && P > 0 ? "up-t" : P > 0 ? "down-t" : "";

    renderPartitions(s, prev);
    renderInstances(s);
    renderLatency(s);
    renderCounters(s);
    renderHot(s);
    renderEvents(s, prev);
    drawCharts();
    $("foot").textContent = "tickshard dashboard · " + (h.stats_messages || 0) + " stats / " + (h.event_messages || 0) +
      " events received · " + (h.bad_messages || 0) + " ignored · " + (h.connected_clients || 0) + " viewer(s)";
  }

  function renderPartitions(s, prev) {
    const grid = $("pmap");
    const P = s.partitions.length;
    if (grid.children.length !== P) {
      grid.innerHTML = "";
      for (let p = 0; p < P; p++) {
        const c = document.createElement("div");
        c.className = "cell";
        c.dataset.p = p;
        c.textContent = p;
        grid.appendChild(c);
      }
    }
    const counts = new Map();
    for (let p = 0; p < P; p++) {
      const owner = s.partitions[p];
      const epoch = s.epochs ? s.epochs[p] : null;
      const c = grid.children[p];
      const before = c.dataset.owner || null;
      if (owner) {
        counts.set(owner, (counts.get(owner) || 0) + 1);
        c.dataset.owner = owner;
        c.style.backgroundColor = ownerColor(owner);
        c.title = "partition " + p + "\nowner " + owner + "\nepoch " + (epoch == null ? "?" : epoch);
      } else {
        delete c.dataset.owner;
        c.style.backgroundColor = "";
        c.title = "partition " + p + "\nunowned";
      }
      if (prev && before !== (owner || null)) {
        c.classList.remove("flash");
        void c.offsetWidth; // restart the animation
        c.classList.add("flash");
      }
    }
    $("pmap-sub").textContent = P ? P + " partitions" : "";
    const lg = $("pmap-legend");
    const items = [...counts.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    lg.innerHTML = items.map(([id, n]) =>
      '<span><i style="background:' + ownerColor(id) + '"></i>' + esc(id) + " · " + n + "</span>").join("") +
      (P - [...counts.values()].reduce((a, b) => a + b, 0) > 0
        ? '<span><i style="background:#1a2233;border:1px dashed #2d3850"></i>unowned</span>' : "");
  }

  function shareBar(el, parts) {
    const total = parts.reduce((a, p) => a + p.v, 0);
    el.innerHTML = total > 0
      ? parts.filter((p) => p.v > 0).map((p) => '<span title="' + esc(p.id) + ": " + p.label + '" style="width:' +
        (100 * p.v / total).toFixed(2) + "%;background:" + ownerColor(p.id) + '"></span>').join("")
      : "";
  }
  function renderInstances(s) {
    const live = s.instances.filter((i) => i.alive);
    const counts = live.map((i) => i.partitions);
    const P = s.partitions.length;
    $("balance").textContent = live.length && P
      ? "max − min = " + (Math.max(...counts) - Math.min(...counts)) + " · ideal " + (P / live.length).toFixed(1) + " each"
      : "";
    shareBar($("share"), s.instances.map((i) => ({ id: i.id, v: i.partitions, label: i.partitions + " partitions" })));
    shareBar($("share-ticks"), s.instances.map((i) => ({ id: i.id, v: i.ticks_per_s, label: fmtNum(i.ticks_per_s) + " ticks/s" })));
    const body = $("instances").querySelector("tbody");
    $("inst-empty").hidden = s.instances.length > 0;
    $("inst-sub").textContent = s.instances.length ? s.instances.length + " known" : "";
    body.innerHTML = s.instances.map((i) => {
      const demo = s.demo
        ? '<td class="actions"><button class="btn small" data-act="stop" data-id="' + esc(i.id) + '"' + (i.alive ? "" : " disabled") +
          '>stop</button><button class="btn small danger" data-act="kill" data-id="' + esc(i.id) + '"' + (i.alive ? "" : " disabled") +
          ">kill -9</button></td>"
        : "";
      return '<tr class="instance-row ' + (i.alive ? "alive" : "dead") + '" data-id="' + esc(i.id) + '">' +
        '<td class="id"><span class="dot" style="background:' + ownerColor(i.id) + '"></span>' + esc(i.id) +
        ' <span class="badge ' + (i.alive ? "up" : "down") + '">' + (i.alive ? "alive" : "dead") + "</span></td>" +
        '<td class="num">' + i.partitions + "</td>" +
        '<td class="num">' + fmtNum(i.ticks_per_s) + "</td>" +
        '<td class="num">' + fmtNum(i.forwarded_per_s) + "</td>" + demo + "</tr>";
    }).join("");
  }

  // The latency figures' window: the last complete seconds, named on every
  // card that shows them ("last 5 s"); the chart has one point per second.
  function windowName(s) {
    const w = s.latency_window || {};
    return "last " + (w.seconds || s.window_s || 5) + " s";
  }
  function windowSpan(s) {
    const w = s.latency_window || {};
    return w.to_ms ? fmtTime(w.from_ms) + "–" + fmtTime(w.to_ms) : "";
  }
  function chip(label, value) {
    return '<div class="chip"><label>' + label + "</label><b>" + value + "</b></div>";
  }
  function renderLatency(s) {
    const l = s.latency_us;
    $("lat-window").textContent = "· merged across instances · chart: one point per second";
    const span = windowSpan(s);
    $("lat-cap").textContent = windowName(s).replace(/^l/, "L") + (span ? " (" + span + ")" : "") + " · " +
      fmtInt(l.count) + " samples";
    $("lat2-window").textContent = "merged, " + windowName(s) + (span ? " (" + span + ")" : "");
    $("latrow").innerHTML = chip("p50", fmtUs(l.p50)) + chip("p90", fmtUs(l.p90)) + chip("p99", fmtUs(l.p99)) +
      chip("p99.9", fmtUs(l.p999)) + chip("max", fmtUs(l.max));
    const f = s.forward_latency_us || {}, fl = s.flush_latency_us || {};
    $("latrow2").innerHTML =
      chip("forward hop p50", fmtUs(f.p50)) + chip("forward hop p99", fmtUs(f.p99)) +
      chip("flush p50", fmtUs(fl.p50)) + chip("flush p99", fmtUs(fl.p99));
  }

  function renderCounters(s) {
    const t = s.totals || {};
    const items = [
      ["Gaps", t.gaps, "hot"],
      ["Gaps skipped", t.gaps_skipped, "alert"],
      ["Replays", t.replays_requested, "hot"],
      ["Replayed ticks", t.replay_ticks, ""],
      ["Duplicates", t.duplicates, "hot"],
      ["Fenced rejects", t.fenced_rejected, "alert"],
      ["Re-forwarded", t.reforwarded, ""],
      ["Held", t.held, ""],
      ["Leases lost", t.leases_lost, "alert"],
      ["Bad input", t.bad_input, "alert"],
    ];
    const tips = {
      "Gaps": "sequence gaps detected", "Gaps skipped": "gaps given up after the gap timeout",
      "Replays": "replay requests sent to the feed", "Replayed ticks": "replayed ticks received",
      "Duplicates": "duplicate ticks dropped", "Fenced rejects": "state writes rejected by fencing",
      "Re-forwarded": "forwarded ticks forwarded again after an ownership change",
      "Held": "ticks held while their partition had no known owner", "Leases lost": "leases expired or taken over",
      "Bad input": "malformed input rejected, all kinds",
    };
    $("counters").innerHTML = items.map(([label, v, cls]) =>
      '<div class="counter' + ((v || 0) > 0 && cls ? " " + cls : "") + '" title="' + tips[label] + '"><label>' + label + "</label><b>" + fmtInt(v) + "</b></div>").join("");
  }

  function candle(sym) {
    const o = parseFloat(sym.open), h = parseFloat(sym.high), l = parseFloat(sym.low), c = parseFloat(sym.close);
    if (![o, h, l, c].every(isFinite) || h <= 0) return "";
    const W = 70, H = 14, span = (h - l) || 1;
    const x = (v) => 3 + ((v - l) / span) * (W - 6);
    const up = c >= o;
    const col = up ? "#36d399" : "#f87272";
    const x0 = Math.min(x(o), x(c)), x1 = Math.max(x(o), x(c));
    return '<svg class="bar" viewBox="0 0 ' + W + " " + H + '"><line x1="' + x(l) + '" x2="' + x(h) + '" y1="7" y2="7" stroke="' + col +
      '" stroke-width="1.2"/><rect x="' + x0 + '" y="3" width="' + Math.max(2, x1 - x0) + '" height="8" rx="1.5" fill="' + col + '"/></svg>';
  }
  function renderHot(s) {
    const list = s.hot_symbols || [];
    $("hot-empty").hidden = list.length > 0;
    $("hot").querySelector("tbody").innerHTML = list.map((h) => {
      const o = parseFloat(h.open), c = parseFloat(h.close);
      const up = c >= o;
      const chg = o > 0 ? ((c - o) / o) * 100 : 0;
      const sel = h.symbol === sym.name ? " selected" : "";
      return '<tr class="hot-row' + sel + '" data-symbol="' + esc(h.symbol) + '" title="watch ' + esc(h.symbol) + '">' +
        '<td class="mono"><b>' + esc(h.symbol) + "</b></td>" +
        '<td class="num">' + fmtInt(h.count) + "</td>" +
        '<td class="num ' + (up ? "up-t" : "down-t") + '">' + esc(h.last_px) + "</td>" +
        '<td class="num">' + esc(h.vwap_px) + "</td>" +
        '<td class="num">' + esc(h.open) + "</td>" +
        '<td class="num">' + esc(h.high) + "</td>" +
        '<td class="num">' + esc(h.low) + "</td>" +
        '<td class="num">' + esc(h.close) + "</td>" +
        '<td class="num ' + (up ? "up-t" : "down-t") + '">' + (chg >= 0 ? "+" : "") + chg.toFixed(2) + "%</td>" +
        "<td>" + candle(h) + "</td></tr>";
    }).join("");
  }

  function describe(e) {
    const who = e.instance ? "<code>" + esc(e.instance) + "</code>" : "";
    switch (e.kind) {
      case "member_joined": return who + " joined the cluster";
      case "member_left": return who + " left the cluster";
      case "lease_acquired": return who + " took <code>#" + e.partition + "</code> <span class=\"ep\">epoch " + e.epoch + "</span>";
      case "lease_released": return who + " released <code>#" + e.partition + "</code> <span class=\"ep\">epoch " + e.epoch + "</span>";
      case "lease_lost": return who + " lost <code>#" + e.partition + "</code> <span class=\"ep\">epoch " + e.epoch + "</span>";
      default: return esc(e.message || "");
    }
  }
  const KIND_LABEL = {
    member_joined: "joined", member_left: "left", lease_acquired: "acquired", lease_released: "released",
    lease_lost: "lost", redis_disconnected: "redis down", redis_connected: "redis up",
  };
  function renderEvents(s, prev) {
    const ev = s.events || [];
    $("ev-empty").hidden = ev.length > 0;
    $("ev-sub").textContent = ev.length ? "last " + ev.length : "";
    const seen = new Set((prev && prev.events || []).map((e) => e.ts_ms + e.kind + e.partition + e.instance));
    const html = [];
    for (let i = ev.length - 1; i >= 0; i--) {
      const e = ev[i];
      const isNew = prev && !seen.has(e.ts_ms + e.kind + e.partition + e.instance);
      html.push('<li class="' + (isNew ? "new" : "") + '"><time>' + fmtTime(e.ts_ms) + '</time><span class="kind ' + esc(e.kind) + '">' +
        esc(KIND_LABEL[e.kind] || e.kind.replace(/_/g, " ")) + '</span><span class="what">' + describe(e) + "</span></li>");
    }
    $("events").innerHTML = html.join("");
  }

  // ---------- charts ----------
  const TP_SERIES = [
    { key: "ticks_per_s", label: "received", color: "#4f9cff", fill: true },
    { key: "applied_per_s", label: "applied", color: "#36d399", dash: [6, 4] },
    { key: "forwarded_per_s", label: "forwarded", color: "#c084fc" },
  ];
  const LAT_SERIES = [
    { key: "p50", label: "p50", color: "#36d399" },
    { key: "p90", label: "p90", color: "#4f9cff" },
    { key: "p99", label: "p99", color: "#f5b942" },
    { key: "p999", label: "p99.9", color: "#fb923c" },
    { key: "max", label: "max", color: "#f87272", dash: [4, 3] },
  ];
  function legend(el, series) {
    el.innerHTML = series.map((s) => '<span><i style="background:' + s.color + '"></i>' + s.label + "</span>").join("");
  }
  legend($("legend-tp"), TP_SERIES);
  legend($("legend-lat"), LAT_SERIES);

  function setupCanvas(cv) {
    const dpr = window.devicePixelRatio || 1;
    const w = cv.clientWidth, h = cv.clientHeight;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
      cv.width = Math.round(w * dpr);
      cv.height = Math.round(h * dpr);
    }
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // Draws series over points [{ts_ms, ...}]; opts.log for a log10 y axis.
  function drawChart(cv, points, series, opts, hoverX) {
    const { ctx, w, h } = setupCanvas(cv);
    const L = 58, R = 12, T = 10, B = 24;
    const pw = w - L - R, ph = h - T - B;
    const now = points.length ? points[points.length - 1].ts_ms : Date.now();
    const span = Math.max(60000, Math.min(300000, points.length ? now - points[0].ts_ms : 60000));
    const t0 = now - span;
    const X = (t) => L + ((t - t0) / span) * pw;
    const vals = [];
    for (const p of points) for (const s of series) { const v = opts.get(p, s.key); if (v > 0) vals.push(v); }
    let Y, ticks;
    if (opts.log) {
      const lo = Math.pow(10, Math.floor(Math.log10(Math.max(1, Math.min(...vals, 100)))));
      const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...vals, lo * 10))));
      const a = Math.log10(lo), b = Math.log10(hi);
      Y = (v) => T + ph - ((Math.log10(Math.max(v, lo)) - a) / (b - a)) * ph;
      ticks = [];
      for (let e = a; e <= b; e++) ticks.push(Math.pow(10, e));
    } else {
      const max = niceMax(Math.max(...vals, 1) * 1.1);
      Y = (v) => T + ph - (v / max) * ph;
      ticks = [0, max / 4, max / 2, (3 * max) / 4, max];
    }
    // grid + y labels
    ctx.font = "11px " + getComputedStyle(document.body).fontFamily;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (const v of ticks) {
      const y = Math.round(Y(v)) + 0.5;
      ctx.strokeStyle = "#1e2739";
      ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(w - R, y); ctx.stroke();
      ctx.fillStyle = "#7d8aa3";
      ctx.fillText((opts.axisFmt || opts.fmt)(v), L - 8, y);
    }
    // x labels every minute (or 30 s for short spans)
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const step = span > 120000 ? 60000 : 30000;
    for (let t = Math.ceil(t0 / step) * step; t <= now; t += step) {
      const x = X(t);
      ctx.fillStyle = "#7d8aa3";
      ctx.fillText(fmtTime(t).slice(0, 5 + (step < 60000 ? 3 : 0)), x, h - B + 7);
      ctx.strokeStyle = "#182033";
      ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, T); ctx.lineTo(Math.round(x) + 0.5, T + ph); ctx.stroke();
    }
    if (!points.length) {
      ctx.fillStyle = "#7d8aa3"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.fillText("waiting for data…", L + pw / 2, T + ph / 2);
      return;
    }
    ctx.save();
    ctx.beginPath(); ctx.rect(L, T - 2, pw, ph + 4); ctx.clip();
    for (const s of series) {
      const pts = points.filter((p) => p.ts_ms >= t0 && (!opts.log || opts.get(p, s.key) > 0))
        .map((p) => [X(p.ts_ms), Y(opts.get(p, s.key))]);
      if (!pts.length) continue;
      if (s.fill) {
        const g = ctx.createLinearGradient(0, T, 0, T + ph);
        g.addColorStop(0, s.color + "55");
        g.addColorStop(1, s.color + "05");
        ctx.fillStyle = g;
        ctx.beginPath();
        ctx.moveTo(pts[0][0], T + ph);
        for (const [x, y] of pts) ctx.lineTo(x, y);
        ctx.lineTo(pts[pts.length - 1][0], T + ph);
        ctx.closePath();
        ctx.fill();
      }
      ctx.strokeStyle = s.color;
      ctx.lineWidth = s.fill ? 2 : 1.6;
      ctx.lineJoin = "round";
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.restore();
    // hover readout
    if (hoverX != null && hoverX >= L && hoverX <= w - R) {
      let best = null;
      for (const p of points) {
        const d = Math.abs(X(p.ts_ms) - hoverX);
        if (!best || d < best.d) best = { d, p };
      }
      if (best) {
        const x = Math.round(X(best.p.ts_ms)) + 0.5;
        ctx.strokeStyle = "#56637d";
        ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, T + ph); ctx.stroke();
        const lines = [fmtTime(best.p.ts_ms) + (opts.span || "")].concat(series.map((s) => s.label + "  " + opts.fmt(opts.get(best.p, s.key))));
        const bw = 132, bh = 16 * lines.length + 8;
        const bx = x + 10 + bw > w ? x - 10 - bw : x + 10;
        ctx.fillStyle = "rgba(12,17,28,.92)";
        ctx.strokeStyle = "#2b3650";
        ctx.fillRect(bx, T + 4, bw, bh); ctx.strokeRect(bx + 0.5, T + 4.5, bw, bh);
        ctx.textAlign = "left"; ctx.textBaseline = "top";
        lines.forEach((line, i) => {
          ctx.fillStyle = i === 0 ? "#e6ebf5" : series[i - 1].color;
          ctx.fillText(line, bx + 8, T + 9 + i * 16);
        });
      }
    }
  }

  function drawCharts() {
    const hist = (last && last.history) || [];
    drawChart($("chart-tp"), hist, TP_SERIES,
      { get: (p, k) => p[k] || 0, fmt: (v) => fmtNum(v) }, hover.tp);
    drawChart($("chart-lat"), hist.filter((p) => p.latency_us && p.latency_us.count > 0), LAT_SERIES,
      { log: true, get: (p, k) => p.latency_us[k] || 0, fmt: fmtUs, axisFmt: fmtUsAxis, span: " · 1 s" }, hover.lat);
  }
  for (const [id, key] of [["chart-tp", "tp"], ["chart-lat", "lat"]]) {
    const cv = $(id);
    cv.addEventListener("mousemove", (e) => { hover[key] = e.offsetX; drawCharts(); });
    cv.addEventListener("mouseleave", () => { hover[key] = null; drawCharts(); });
  }
  window.addEventListener("resize", drawCharts);

  // ---------- symbol view ----------
  // One symbol live from /ws/symbols: its stored state (last price, VWAP,
  // counts, current bar) and its completed 1-minute bars, drawn as OHLC
  // candles in inline SVG. Chosen with the input, a hot-symbol row, or
  // #symbol=SYM in the page's URL.
  const BARS_OP = "bars_1m";
  const MAX_BARS = 120;
  const sym = { name: null, gen: 0, ws: null, backoff: 500, timer: null, seq: 0, state: null, bars: new Map() };

  // Prices are stored with four decimals: "187.4500" reads "187.45".
  function fmtPx(v) {
    const n = parseFloat(v);
    return isFinite(n) ? n.toFixed(4).replace(/0{1,2}$/, "") : "–";
  }
  function symbolUrl(name, scheme) {
    return withToken(scheme + "//" + location.host + "/ws/symbols?subscribe=" + encodeURIComponent(name) +
      "&history=" + BARS_OP);
  }
  function symbolMsg(kind, text) {
    const m = $("symbol-msg");
    m.dataset.kind = kind;
    m.textContent = text;
    m.hidden = !text;
  }

  function watchSymbol(raw) {
    const name = String(raw || "").trim().toUpperCase();
    if (!name || (name === sym.name && sym.ws)) return;
    const old = sym.ws;
    clearTimeout(sym.timer);
    Object.assign(sym, { name, gen: sym.gen + 1, ws: null, backoff: 500, seq: 0, state: null, bars: new Map() });
    if (old) old.close();
    $("symbol-input").value = name;
    history.replaceState(null, "", "#symbol=" + encodeURIComponent(name));
    for (const tr of $("hot").querySelectorAll("tr[data-symbol]")) tr.classList.toggle("selected", tr.dataset.symbol === name);
    symbolMsg("info", "Connecting to " + name + "…");
    renderSymbol();
    symbolConnect();
  }

  function symbolConnect() {
    const { name, gen } = sym;
    const again = sym.state != null;
    setPill($("symbol-conn"), again ? "reconnecting" : "connecting", again ? "reconnecting" : "connecting");
    const socket = new WebSocket(symbolUrl(name, location.protocol === "https:" ? "wss:" : "ws:"));
    let opened = false;
    sym.ws = socket;
    socket.onopen = () => { opened = true; sym.backoff = 500; setPill($("symbol-conn"), "live", "live"); };
    socket.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (sym.ws === socket && m && m.symbol === name) onSymbolMessage(m);
    };
    socket.onclose = (ev) => {
      if (sym.ws !== socket) return; // another symbol was chosen meanwhile
      sym.ws = null;
      setPill($("symbol-conn"), "down", "offline");
      if (opened) symbolRetry(gen, closeReason(ev));
      else probeSymbol(name, gen);
    };
  }
  function closeReason(ev) {
    if (ev.code === 1008) return "Fell behind the live updates";
    if (ev.code === 1011) return ev.reason ? "Reconnecting: " + ev.reason : "Server error";
    if (ev.code === 1001) return "The dashboard is shutting down";
    return "Connection lost";
  }
  // A refused handshake tells the page nothing, so the same URL is asked
  // over plain HTTP: a bad symbol answers 400 {"error": ...}, final.
  async function probeSymbol(name, gen) {
    let status = 0, error = "";
    try {
      const r = await fetch(symbolUrl(name, location.protocol));
      status = r.status;
      error = (await r.json().catch(() => ({}))).error || "";
    } catch (e) { /* unreachable: retried below */ }
    if (gen !== sym.gen) return;
    if (status === 400 && error) {
      setPill($("symbol-conn"), "down", "refused");
      symbolMsg("error", "Cannot watch " + name + ": " + error);
      return;
    }
    symbolRetry(gen, error || (status ? "HTTP " + status : "Dashboard unreachable"));
  }
  function symbolRetry(gen, why) {
    if (gen !== sym.gen) return;
    const wait = sym.backoff + Math.random() * 250;
    sym.backoff = Math.min(sym.backoff * 2, 10000);
    setPill($("symbol-conn"), "reconnecting", "reconnecting");
    symbolMsg("error", why + " · reconnecting in " + Math.ceil(wait / 1000) + " s…");
    sym.timer = setTimeout(symbolConnect, wait);
  }

  function onSymbolMessage(m) {
    if (m.type === "snapshot") {
      Object.assign(sym, { seq: m.last_seq || 0, state: m.state || {}, bars: new Map() });
      addBars(m.history);
      symbolMsg("info", sym.seq ? "" : "No data yet for " + m.symbol + ": nothing is stored for it. Waiting for its first tick…");
    } else if (m.type === "update" && m.last_seq > sym.seq) {
      Object.assign(sym, { seq: m.last_seq, state: m.state || {} });
      addBars(m.outputs);
      symbolMsg("info", "");
    } else {
      return;
    }
    renderSymbol();
  }
  // A completed bar (an output of BARS_OP), or the current one from the
  // state's fields (cur).
  function toBar(f, cur) {
    const b = {
      start: Number(f[cur ? "bar_start_ns" : "start_ns"]),
      o: parseFloat(f.open), h: parseFloat(f.high), l: parseFloat(f.low), c: parseFloat(f.close),
      volume: +f[cur ? "bar_volume" : "volume"] || 0, count: +f[cur ? "bar_count" : "count"] || 0, cur,
    };
    return [b.start, b.o, b.h, b.l, b.c].every(isFinite) ? b : null;
  }
  function addBars(entries) {
    for (const e of entries || []) {
      const b = e.operator === BARS_OP && toBar(e.fields || {}, false);
      if (b) sym.bars.set(b.start, b);
    }
    const starts = [...sym.bars.keys()].sort((a, b) => a - b);
    for (const s of starts.slice(0, -MAX_BARS)) sym.bars.delete(s);
  }

  function renderSymbol() {
    const st = sym.state || {};
    const cur = toBar(st, true);
    $("symbol-name").textContent = sym.name || "–";
    $("symbol-last-px").textContent = fmtPx(st.last_px);
    $("symbol-last-px").className = cur ? (cur.c >= cur.o ? "up-t" : "down-t") : "";
    $("symbol-vwap").textContent = fmtPx(st.vwap_px);
    $("symbol-count").textContent = st.count ? fmtInt(+st.count) : "–";
    $("symbol-volume").textContent = st.volume ? fmtInt(+st.volume) : "–";
    drawBars();
  }
  function drawBars() {
    const svg = $("symbol-bars");
    const W = svg.clientWidth || 800, H = svg.clientHeight || 240;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    const L = 8, R = 70, T = 10, B = 22, pw = W - L - R, ph = H - T - B;
    const bars = [...sym.bars.values()];
    const cur = sym.state && toBar(sym.state, true);
    if (cur && !sym.bars.has(cur.start)) bars.push(cur);
    bars.sort((a, b) => a.start - b.start);
    const shown = bars.slice(-Math.max(1, Math.floor(pw / 8)));
    if (!shown.length) {
      svg.innerHTML = '<text class="axis" x="' + W / 2 + '" y="' + H / 2 + '" text-anchor="middle">' +
        (sym.name ? "waiting for bars…" : "no symbol chosen") + "</text>";
      return;
    }
    let lo = Math.min(...shown.map((b) => b.l)), hi = Math.max(...shown.map((b) => b.h));
    const pad = (hi - lo) * 0.08 || hi * 0.002 || 1;
    lo -= pad;
    hi += pad;
    const Y = (v) => T + ((hi - v) / (hi - lo)) * ph;
    const n = (v) => v.toFixed(1);
    const slot = pw / Math.max(shown.length, 30); // a few bars stay narrow, at the right
    const bw = Math.max(1, Math.min(12, slot * 0.6));
    const every = Math.ceil(64 / slot); // a time label every ~64 px
    const dp = hi - lo < 0.05 ? 4 : 2; // price axis decimals
    const out = [];
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4, y = n(Y(v));
      out.push('<line class="grid" x1="' + L + '" x2="' + (L + pw) + '" y1="' + y + '" y2="' + y + '"/>' +
        '<text class="axis" x="' + (L + pw + 8) + '" y="' + y + '" dy="4">' + v.toFixed(dp) + "</text>");
    }
    shown.forEach((b, i) => {
      const age = shown.length - 1 - i;
      const x = L + pw - slot * (age + 0.5);
      const top = Y(Math.max(b.o, b.c)), height = Math.max(1, Y(Math.min(b.o, b.c)) - top);
      const time = fmtTime(b.start / 1e6).slice(0, 5);
      const tip = time + (b.cur ? " (in progress)" : "") + "\nO " + fmtPx(b.o) + "  H " + fmtPx(b.h) + "  L " + fmtPx(b.l) +
        "  C " + fmtPx(b.c) + "\n" + fmtInt(b.count) + " ticks · volume " + fmtInt(b.volume);
      out.push('<g class="candle ' + (b.c >= b.o ? "up" : "down") + (b.cur ? " current" : "") + '" data-start="' + b.start + '">' +
        "<title>" + esc(tip) + '</title><line x1="' + n(x) + '" x2="' + n(x) + '" y1="' + n(Y(b.h)) + '" y2="' + n(Y(b.l)) +
        '"/><rect x="' + n(x - bw / 2) + '" y="' + n(top) + '" width="' + n(bw) + '" height="' + n(height) + '"/></g>');
      if (age % every === 0) {
        out.push('<text class="axis" x="' + n(x) + '" y="' + (H - 6) + '" text-anchor="middle">' + time + "</text>");
      }
    });
    svg.innerHTML = out.join("");
  }

  $("symbol-form").addEventListener("submit", (e) => {
    e.preventDefault();
    watchSymbol($("symbol-input").value);
  });
  // On mousedown, not click: the table is rebuilt several times a second,
  // which can swallow a click between press and release.
  $("hot").addEventListener("mousedown", (e) => {
    const tr = e.button === 0 && e.target.closest("tr[data-symbol]");
    if (tr) watchSymbol(tr.dataset.symbol);
  });
  function symbolFromHash() {
    const m = /^#symbol=(.+)$/.exec(location.hash);
    if (!m) return;
    let name = m[1];
    try {
      name = decodeURIComponent(name);
    } catch (e) {
      // A malformed escape: watch what was typed, the server judges it.
    }
    watchSymbol(name);
  }
  window.addEventListener("hashchange", symbolFromHash);
  window.addEventListener("resize", drawBars);

  // ---------- demo controls ----------
  function toast(text) {
    const t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 3500);
  }
  async function demo(action, id) {
    const url = "/api/demo/" + action + (id ? "?instance=" + encodeURIComponent(id) : "");
    try {
      const r = await fetch(withToken(url), { method: "POST" });
      const body = await r.json().catch(() => ({ message: r.statusText }));
      toast((r.ok ? "✓ " : "✗ ") + (body.message || action));
    } catch (e) {
      toast("✗ " + e);
    }
  }
  $("demo-start").addEventListener("click", () => demo("start"));
  $("instances").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-act]");
    if (!b) return;
    demo(b.dataset.act, b.dataset.id);
  });

  drawCharts();
  renderSymbol();
  connect();
  symbolFromHash();
})();
