// floatseat's dashboard: live figures and charts, polled from /api/v1 on this server only.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const C = { blue: "#2f6fb3", orange: "#d9480f", grey: "#8a94a6", line: "#e3e7ee", text: "#1f2633" };
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
  const $ = (id) => document.getElementById(id);
  const pad = (n) => (n < 10 ? "0" : "") + n;
  const fmtTime = (ms) => {
    const d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  };
  const fmtWait = (s) => (s === null ? "unknown" : s < 60 ? s + " s" :
    (s >= 3600 ? Math.floor(s / 3600) + " h " : "") + Math.floor((s % 3600) / 60) + " min");
  const get = (path) =>
    fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } }).then((r) => {
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.json();
    });

  let rendered = 0;
  const markRendered = () => { document.body.dataset.chartsRendered = String(++rendered); };

  // -- seats held against capacity --------------------------------------------------------
  const seatsEl = $("chart-seats");
  const seats = echarts.init(seatsEl, null, { renderer: "canvas" });
  seats.on("finished", function once() { seats.off("finished", once); markRendered(); });
  const held = [];
  const capacity = [];
  const drawSeats = () => {
    seats.setOption({
      series: [{ id: "held", data: held }, { id: "capacity", data: capacity }],
    });
  };
  seats.setOption({
    useUTC: true,
    animation: false,
    textStyle: { fontFamily: FONT, color: C.text },
    grid: { left: 48, right: 24, top: 32, bottom: 40 },
    legend: { data: ["seats held", "capacity"], top: 0 },
    tooltip: {
      trigger: "axis",
      confine: true,
      formatter: (items) => {
        const lines = [fmtTime(items[0].value[0])];
        for (const it of items) lines.push(it.seriesName + ": " + it.value[1]);
        return lines.map((l) => String(l).replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c])).join("<br>");
      },
    },
    xAxis: { type: "time", splitLine: { show: false } },
    yAxis: { type: "value", minInterval: 1, min: 0, splitLine: { lineStyle: { color: C.line } } },
    series: [
      { id: "held", name: "seats held", type: "line", step: "end", showSymbol: false,
        areaStyle: { opacity: 0.25 }, lineStyle: { width: 2 }, color: C.blue, data: held },
      { id: "capacity", name: "capacity", type: "line", step: "end", showSymbol: false,
        lineStyle: { type: "dashed", width: 2 }, color: C.orange, data: capacity },
    ],
  });

  // -- the daily maximum licensed count ---------------------------------------------------
  const licenceEl = $("chart-licence");
  const rows = [...document.querySelectorAll("#licence-days tbody tr[data-day]")].reverse();
  const licence = echarts.init(licenceEl, null, { renderer: "canvas" });
  licence.on("finished", function once() { licence.off("finished", once); markRendered(); });
  licence.setOption({
    animation: false,
    textStyle: { fontFamily: FONT, color: C.text },
    grid: { left: 48, right: 16, top: 28, bottom: 32 },
    legend: { data: ["max licensed", "tier"], top: 0 },
    tooltip: { trigger: "axis", confine: true },
    xAxis: { type: "category", data: rows.map((r) => r.dataset.day) },
    yAxis: { type: "value", minInterval: 1, min: 0, splitLine: { lineStyle: { color: C.line } } },
    series: [
      { name: "max licensed", type: "bar", color: C.blue, data: rows.map((r) => Number(r.dataset.max)) },
      { name: "tier", type: "line", step: "middle", showSymbol: false, color: C.orange,
        data: rows.map((r) => Number(r.dataset.tier)) },
    ],
    title: rows.length ? undefined : { text: "No licence read yet", left: "center", top: "middle",
      textStyle: { color: C.grey, fontSize: 13, fontWeight: "normal" } },
  });
  window.addEventListener("resize", () => { seats.resize(); licence.resize(); });

  // -- live figures and tables ------------------------------------------------------------
  const setText = (id, text) => { const el = $(id); if (el) el.textContent = String(text); };
  const fillTable = (id, items, cells, emptyText) => {
    const body = document.querySelector("#" + id + " tbody");
    if (!body) return;
    body.replaceChildren();
    if (!items.length) {
      const tr = body.insertRow();
      tr.className = "empty";
      const td = tr.insertCell();
      td.colSpan = 4;
      td.textContent = emptyText;
      return;
    }
    for (const item of items) {
      const tr = body.insertRow();
      for (const text of cells(item)) tr.insertCell().textContent = text;
    }
  };
  const ms = (iso) => Date.parse(iso);

  // Who this instance is and who leads; worded as views.leadership_text (none when solo).
  const leadershipText = (s) => {
    const epoch = s.epoch === null ? "" : " (epoch " + s.epoch + ")";
    if (s.role === "leader") return s.instance + " · leader" + epoch;
    if (s.role === "leader-taking-over") {
      return s.instance + " · taking over as leader" + epoch + ": directory moves resume within seconds";
    }
    return s.instance + " · follower — " + (s.leader ? "leader: " + s.leader : "no leader at the moment") + epoch;
  };
  const applyRole = (s) => {
    const el = $("instance-role");
    if (!el || s.role === "solo") return;  // a single instance shows no badge
    el.textContent = leadershipText(s);
    el.className = "instance role-" + s.role;
  };

  const applyStatus = (s) => {
    setText("fig-held", s.seats_held);
    setText("fig-capacity", s.capacity);
    setText("fig-queue", s.queue_length);
    setText("fig-pinned", s.pinned);
    setText("fig-licence", (s.licensed ?? "–") + " / " + (s.tier ?? "–"));
    applyRole(s);
    const list = $("warnings");
    list.replaceChildren(...s.warnings.map((w) => { const li = document.createElement("li"); li.textContent = w; return li; }));
    const now = ms(s.now);
    held.push([now, s.seats_held]);
    capacity.push([now, s.capacity]);
    drawSeats();
  };

  const refreshTables = () =>
    Promise.all([get("/api/v1/seats"), get("/api/v1/queue")]).then(([holders, queue]) => {
      fillTable("holders", holders, (h) => [h.user, fmtTime(ms(h.granted_at)), fmtTime(ms(h.last_activity)), fmtTime(ms(h.expires_at))], "Nobody holds a floating seat.");
      fillTable("queue", queue, (w) => [w.position, w.user, fmtTime(ms(w.queued_at)), fmtWait(w.estimated_wait_s)], "Nobody is waiting.");
    });

  const lost = (error) => {
    document.body.dataset.pollError = String(error.message || error);
  };

  const poll = () =>
    get("/api/v1/status").then(applyStatus).then(refreshTables)
      .then(() => { delete document.body.dataset.pollError; }, lost)
      .finally(() => setTimeout(poll, config.pollMs));

  get("/api/v1/seats/history?window_s=" + config.historyWindowS)
    .then((h) => {
      for (const [at, n] of h.points) held.push([ms(at), n]);
      if (h.points.length) capacity.push([ms(h.points[0][0]), h.capacity]);
    }, lost)
    .then(() => { drawSeats(); poll(); });
})();
