/* The staff dashboard: reads the operator API with the token staff enter (kept in this tab's
   sessionStorage, sent as Authorization: Bearer; no cookies), follows /api/events for live
   changes, draws the statistics with uPlot and the locations with Leaflet. No build step,
   no inline script (the page runs under a strict Content-Security-Policy). */
"use strict";

(function () {
  const TOKEN_KEY = "csms.token";
  const STATUSES = ["Available", "Occupied", "Reserved", "Unavailable", "Faulted", "Unknown"];
  // A charger's status: the most pressing of its EVSEs' and its own (csms/core/overview.py).
  const PRECEDENCE = ["Faulted", "Unavailable", "Occupied", "Reserved", "Available"];
  const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const COLOURS = ["#2f6fd6", "#2e9d57", "#d2433b", "#9a62c9", "#e08a1e", "#1aa3a3", "#7a5c3e", "#c2418f"];
  const MAX_SERIES = COLOURS.length;

  const $ = (id) => document.getElementById(id);
  const state = {
    token: null,
    chargers: new Map(), // id -> {charger JSON from /api/chargers, kept up to date}
    stream: null, // AbortController of the event stream
    overviewTimer: null,
    refreshTimer: null,
    map: null,
    markers: null,
    charts: {},
    documented: null, // paths of /api/openapi.json
  };

  class Unauthorized extends Error {}

  // --- talking to the API -------------------------------------------------------------------

  async function api(path, params) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const response = await fetch(url, { headers: { Authorization: "Bearer " + state.token }, cache: "no-store" });
    if (response.status === 401) throw new Unauthorized("the token was not accepted");
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.status + " " + response.statusText);
    return body;
  }

  async function documented(path) {
    // Whether this server offers an endpoint (an older one may lack the statistics): asking
    // the open description first keeps 404s out of the console.
    if (state.documented === null) {
      const response = await fetch("/api/openapi.json", { cache: "no-store" });
      state.documented = new Set(Object.keys((await response.json()).paths || {}));
    }
    return state.documented.has(path);
  }

  // --- logging in and out -------------------------------------------------------------------

  async function logIn(token) {
    state.token = token;
    try {
      await api("/api/overview");
    } catch (error) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      $("login-error").textContent = error instanceof Unauthorized ? "That token is not accepted." : String(error.message || error);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login-error").textContent = "";
    $("login").hidden = true;
    $("board").hidden = false;
    $("logout").hidden = false;
    start();
  }

  function logOut(message) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.stream) state.stream.abort();
    state.stream = null;
    clearInterval(state.refreshTimer);
    clearTimeout(state.overviewTimer);
    state.chargers.clear();
    $("chargers").tBodies[0].replaceChildren();
    $("board").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("token").value = "";
    $("login-error").textContent = message || "";
    setLive(false);
  }

  function guarded(work) {
    return async (...args) => {
      try {
        await work(...args);
      } catch (error) {
        if (error instanceof Unauthorized) logOut("The token is no longer accepted: log in again.");
        else throw error;
      }
    };
  }

  // --- the network at a glance --------------------------------------------------------------

  const loadOverview = guarded(async () => {
    const o = await api("/api/overview");
    $("chargers-total").textContent = o.chargers.total;
    $("chargers-connected").textContent = o.chargers.connected;
    $("sessions-running").textContent = o.sessions_running;
    $("power-now").textContent = formatPower(o.power_w);
    $("power-now").dataset.watts = o.power_w;
    $("overview-at").textContent = o.at;
    const list = $("by-status");
    list.replaceChildren(
      ...STATUSES.map((status) => {
        const item = document.createElement("li");
        item.className = "s-" + status;
        item.dataset.status = status;
        item.append(status);
        const count = document.createElement("b");
        count.textContent = o.chargers.by_status[status] ?? 0;
        item.append(count);
        return item;
      }),
    );
  });

  function overviewSoon() {
    clearTimeout(state.overviewTimer);
    state.overviewTimer = setTimeout(loadOverview, 300);
  }

  function formatPower(watts) {
    if (watts >= 1e6) return (watts / 1e6).toFixed(2) + " MW";
    if (watts >= 1e3) return (watts / 1e3).toFixed(1) + " kW";
    return Math.round(watts) + " W";
  }

  // --- chargers -----------------------------------------------------------------------------

  const loadChargers = guarded(async () => {
    const page = await api("/api/chargers", { limit: 1000 });
    state.chargers.clear();
    for (const charger of page.items) state.chargers.set(charger.id, charger);
    const body = $("chargers").tBodies[0];
    body.replaceChildren(...page.items.map(chargerRow));
    const more = $("chargers-more");
    more.hidden = page.total <= page.items.length;
    more.textContent = `The first ${page.items.length} of ${page.total} chargers (GET /api/chargers pages on).`;
  });

  function chargerStatus(charger) {
    const present = new Set(charger.connectors.map((c) => c.status_group));
    return PRECEDENCE.find((status) => present.has(status)) || "Unknown";
  }

  function badge(text, status) {
    const span = document.createElement("span");
    span.className = "badge s-" + status;
    span.textContent = text;
    return span;
  }

  function chargerRow(charger) {
    const row = document.createElement("tr");
    row.dataset.charger = charger.id;
    const cells = [0, 1, 2, 3, 4].map(() => document.createElement("td"));
    cells[0].textContent = charger.id;
    cells[1].className = "connection";
    cells[1].textContent = charger.connected ? "online" : "offline";
    const status = chargerStatus(charger);
    cells[2].className = "status";
    cells[2].dataset.status = status;
    cells[2].append(badge(status, status));
    cells[3].className = "evses";
    for (const c of charger.connectors.filter((c) => c.evse_id > 0)) {
      const b = badge(c.evse_id + (c.connector_id > 1 ? "/" + c.connector_id : "") + " " + c.status, c.status_group);
      b.dataset.evse = c.evse_id;
      b.dataset.connector = c.connector_id;
      b.dataset.status = c.status;
      b.title = `EVSE ${c.evse_id} connector ${c.connector_id}: ${c.status} since ${c.status_at}`;
      cells[3].append(b);
    }
    cells[4].className = "contact";
    cells[4].textContent = charger.last_seen_at ? charger.last_seen_at.replace("T", " ").replace("Z", " UTC") : "never";
    cells[4].dataset.at = charger.last_seen_at || "";
    row.append(...cells);
    return row;
  }

  function redraw(id) {
    const charger = state.chargers.get(id);
    const body = $("chargers").tBodies[0];
    const fresh = chargerRow(charger);
    fresh.classList.add("changed");
    const old = body.querySelector(`tr[data-charger="${CSS.escape(id)}"]`);
    if (old) old.replaceWith(fresh);
    else body.append(fresh);
  }

  function onStatus(change) {
    let charger = state.chargers.get(change.charge_point_id);
    if (!charger) {
      charger = { id: change.charge_point_id, connected: true, connectors: [], last_seen_at: null };
      state.chargers.set(charger.id, charger);
    }
    const others = charger.connectors.filter((c) => !(c.evse_id === change.evse_id && c.connector_id === change.connector_id));
    others.push({
      evse_id: change.evse_id,
      connector_id: change.connector_id,
      status: change.status,
      status_group: change.status_group,
      error_code: change.error_code,
      status_at: change.at,
    });
    others.sort((a, b) => a.evse_id - b.evse_id || a.connector_id - b.connector_id);
    charger.connectors = others;
    charger.last_seen_at = latest(charger.last_seen_at, change.at);
    redraw(charger.id);
  }

  function onConnection(change) {
    const charger = state.chargers.get(change.charge_point_id);
    if (!charger) {
      loadChargers(); // a charger we did not list yet
      return;
    }
    charger.connected = change.connected;
    charger.last_seen_at = latest(charger.last_seen_at, change.at);
    redraw(charger.id);
  }

  function latest(a, b) {
    if (!a) return b;
    return Date.parse(b) > Date.parse(a) ? b : a;
  }

  // --- the live feed (fetch streaming: EventSource cannot send the token) --------------------

  function setLive(on) {
    const live = $("live");
    live.textContent = on ? "live" : "offline";
    live.className = "live " + (on ? "on" : "off");
  }

  async function follow() {
    let wait = 1000;
    while (state.token) {
      const controller = new AbortController();
      state.stream = controller;
      try {
        const response = await fetch("/api/events", {
          headers: { Authorization: "Bearer " + state.token, Accept: "text/event-stream" },
          signal: controller.signal,
          cache: "no-store",
        });
        if (response.status === 401) {
          logOut("The token is no longer accepted: log in again.");
          return;
        }
        if (!response.ok || !response.body) throw new Error("event stream: " + response.status);
        let first = true;
        await readStream(response.body.getReader(), () => {
          if (!first) return;
          first = false;
          wait = 1000;
          setLive(true);
          // Changes committed from here on arrive on the stream: read the state once more
          // so that nothing between the first read (or the last stream) and now is missed.
          loadChargers();
          overviewSoon();
        });
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      setLive(false);
      if (!state.token) return;
      // The stream ended (server restarting, or this tab fell behind): catch up, then rejoin.
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 30000);
    }
  }

  async function readStream(reader, opened) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      opened();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(block);
      }
    }
  }

  function dispatch(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    const change = JSON.parse(data.join("\n"));
    if (name === "status") onStatus(change);
    else if (name === "connection") onConnection(change);
    overviewSoon();
  }

  // --- the map ------------------------------------------------------------------------------

  const loadMap = guarded(async () => {
    const note = $("map-note");
    if (!window.L) {
      note.textContent = "The map library did not load.";
      return;
    }
    if (!state.map) {
      state.map = L.map("map", { worldCopyJump: true, attributionControl: true }).setView([50, 10], 4);
      const tiles = document.body.dataset.tiles;
      if (tiles) {
        L.tileLayer(tiles, { maxZoom: 19, attribution: "map tiles: " + new URL(tiles.replace(/\{s\}/g, "a")).host }).addTo(state.map);
      }
      state.markers = L.layerGroup().addTo(state.map);
    }
    const page = await api("/api/locations", { limit: 1000 });
    state.markers.clearLayers();
    const points = [];
    for (const loc of page.items) {
      const lat = parseFloat((loc.coordinates || {}).latitude);
      const lon = parseFloat((loc.coordinates || {}).longitude);
      if (!Number.isFinite(lat) || !Number.isFinite(lon)) continue;
      const marker = L.circleMarker([lat, lon], { radius: 8, color: "#1d4f9c", fillColor: "#3b7bd6", fillOpacity: 0.8, weight: 2 });
      const popup = document.createElement("div");
      const title = document.createElement("b");
      title.textContent = loc.name || loc.id;
      const detail = document.createElement("div");
      detail.textContent = [loc.address, loc.city].filter(Boolean).join(", ");
      const chargers = document.createElement("div");
      chargers.textContent = "chargers: " + ((loc.chargers || []).join(", ") || "none");
      popup.append(title, detail, chargers);
      marker.bindPopup(popup);
      marker.bindTooltip(loc.name || loc.id);
      marker.addTo(state.markers);
      points.push([lat, lon]);
    }
    if (points.length === 1) state.map.setView(points[0], 13);
    else if (points.length > 1) state.map.fitBounds(points, { padding: [20, 20], maxZoom: 14 });
    const tiles = document.body.dataset.tiles;
    note.dataset.locations = points.length;
    note.textContent =
      `${points.length} location${points.length === 1 ? "" : "s"} on the map` +
      (tiles ? "." : " (no map tiles configured: set api.map_tiles to draw a background map).");
    state.map.invalidateSize();
  });

  // --- statistics ---------------------------------------------------------------------------

  function filters() {
    const day = (id) => {
      const value = $(id).value;
      return value ? value + "T00:00:00Z" : "";
    };
    return {
      by: $("f-by").value,
      period: $("f-period").value,
      from: day("f-from"),
      to: day("f-to"),
      charger: $("f-charger").value.trim(),
      location: $("f-location").value.trim(),
      site: $("f-site").value.trim(),
    };
  }

  const loadStats = guarded(async () => {
    const error = $("stats-error");
    error.textContent = "";
    if (!(await documented("/api/stats"))) {
      error.textContent = "This server has no statistics endpoint (GET /api/stats).";
      return;
    }
    const params = filters();
    let stats;
    try {
      stats = await api("/api/stats", params);
    } catch (failure) {
      if (failure instanceof Unauthorized) throw failure;
      error.textContent = String(failure.message || failure);
      return;
    }
    drawSeries(stats.rows);
    const { by, period, ...scope } = params;
    if (await documented("/api/stats/heatmap")) drawHeatmap((await api("/api/stats/heatmap", scope)).rows);
    if (await documented("/api/stats/uptime")) drawUptime((await api("/api/stats/uptime", { ...scope, by: "evse", period: "month" })).rows);
  });

  function drawSeries(rows) {
    const starts = [...new Set(rows.map((r) => Date.parse(r.start) / 1000))].sort((a, b) => a - b);
    const at = new Map(starts.map((t, i) => [t, i]));
    const groups = new Map();
    let sessions = 0;
    let energyWh = 0;
    for (const row of rows) {
      sessions += row.sessions;
      energyWh += Math.round(parseFloat(row.energy_kwh) * 1000);
      let group = groups.get(row.group);
      if (!group) {
        group = { energy: new Array(starts.length).fill(0), sessions: new Array(starts.length).fill(0), total: 0 };
        groups.set(row.group, group);
      }
      const i = at.get(Date.parse(row.start) / 1000);
      group.energy[i] = parseFloat(row.energy_kwh);
      group.sessions[i] = row.sessions;
      group.total += parseFloat(row.energy_kwh);
    }
    $("total-sessions").textContent = sessions;
    $("total-energy").textContent = (energyWh / 1000).toFixed(3);
    const shown = [...groups.entries()].sort((a, b) => b[1].total - a[1].total || a[0].localeCompare(b[0])).slice(0, MAX_SERIES);
    timeChart("chart-energy", starts, shown.map(([name, g]) => [name, g.energy]), "kWh");
    timeChart("chart-sessions", starts, shown.map(([name, g]) => [name, g.sessions]), "sessions");
  }

  function width(id) {
    return Math.max(300, $(id).clientWidth || 400);
  }

  function timeChart(id, xs, series, unit) {
    if (state.charts[id]) state.charts[id].destroy();
    const el = $(id);
    el.replaceChildren();
    if (!window.uPlot) {
      el.textContent = "The chart library did not load.";
      return;
    }
    if (!xs.length) {
      el.textContent = "No data in this range.";
      return;
    }
    // One slot per period (the first and last may be clipped to the range: equal widths
    // keep the bars apart), labelled with the period's start in UTC.
    const label = (i) => {
      const t = xs[i];
      if (t === undefined) return "";
      const iso = new Date(t * 1000).toISOString();
      return $("f-period").value === "hour" ? iso.slice(5, 16).replace("T", " ") : iso.slice(0, 10);
    };
    const opts = {
      width: width(id),
      height: 220,
      scales: {
        x: { time: false, range: [-0.5, xs.length - 0.5] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? label(t) : "")), space: 80 },
        { label: unit, size: 60 },
      ],
      series: [
        { label: "start (UTC)", value: (u, v) => (v === null || v === undefined ? "–" : label(v)) },
        ...series.map(([name], i) => {
          const line = { label: name, stroke: COLOURS[i % COLOURS.length], width: 2, fill: COLOURS[i % COLOURS.length] + "33" };
          // Few periods: bars side by side; many: lines.
          if (xs.length < 60 && series.length === 1) {
            line.paths = uPlot.paths.bars({ size: [0.7, 60] });
            line.points = { show: false };
          }
          return line;
        }),
      ],
    };
    state.charts[id] = new uPlot(opts, [xs.map((_, i) => i), ...series.map(([, values]) => values)], el);
  }

  function drawHeatmap(rows) {
    const cells = new Map(rows.map((r) => [r.weekday * 24 + r.hour, r.utilisation_pct]));
    const max = Math.max(0, ...cells.values());
    const grid = document.createElement("div");
    grid.className = "heat";
    grid.append(document.createElement("span"));
    for (let hour = 0; hour < 24; hour++) {
      const label = document.createElement("span");
      label.textContent = hour % 3 === 0 ? String(hour) : "";
      grid.append(label);
    }
    for (let day = 0; day < 7; day++) {
      const label = document.createElement("span");
      label.textContent = WEEKDAYS[day];
      grid.append(label);
      for (let hour = 0; hour < 24; hour++) {
        const value = cells.get(day * 24 + hour) || 0;
        const cell = document.createElement("span");
        const level = max > 0 && value > 0 ? Math.max(1, Math.ceil((value / max) * 5)) : 0;
        cell.className = "cell h" + level;
        cell.dataset.weekday = day;
        cell.dataset.hour = hour;
        cell.dataset.value = value;
        cell.title = `${WEEKDAYS[day]} ${String(hour).padStart(2, "0")}:00 UTC: ${value.toFixed(2)} %`;
        grid.append(cell);
      }
    }
    $("heatmap").replaceChildren(grid);
  }

  function drawUptime(rows) {
    // A group's uptime over the whole range: its EVSEs' summed time (the NEVI rule).
    const groups = new Map();
    for (const row of rows) {
      const g = groups.get(row.group) || { period: 0, counted: 0 };
      g.period += row.period_s;
      g.counted += row.outage_s - row.excluded_s;
      groups.set(row.group, g);
    }
    const names = [...groups.keys()].sort();
    const values = names.map((n) => {
      const g = groups.get(n);
      return g.period > 0 ? Math.round(((g.period - g.counted) / g.period) * 10000) / 100 : 100;
    });
    const id = "chart-uptime";
    if (state.charts[id]) state.charts[id].destroy();
    const el = $(id);
    el.replaceChildren();
    el.dataset.groups = names.join(",");
    el.dataset.values = values.join(",");
    const below = names.filter((n, i) => values[i] < 97);
    $("uptime-note").textContent = names.length
      ? `${below.length} of ${names.length} EVSEs below 97 %` + (below.length ? ": " + below.join(", ") : "")
      : "No EVSEs in this range.";
    if (!names.length || !window.uPlot) return;
    const xs = names.map((_, i) => i);
    state.charts[id] = new uPlot(
      {
        width: width(id),
        height: 220,
        // From just below the lowest (at most 90 %): a few tenths of a per cent matter here.
        scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: { range: [Math.min(90, Math.floor(Math.min(...values)) - 1), 100] } },
        axes: [
          { values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? names[t] || "" : "")), incrs: [1] },
          { label: "%", size: 50 },
        ],
        series: [
          { label: "EVSE", value: (u, v) => (v === null ? "–" : names[v] || "") },
          { label: "uptime %", stroke: "#2e9d57", fill: "#2e9d5788", paths: uPlot.paths.bars({ size: [0.6, 60] }) },
        ],
      },
      [xs, values],
      el,
    );
  }

  // --- start --------------------------------------------------------------------------------

  function start() {
    loadOverview();
    loadChargers();
    follow();
    loadMap();
    loadStats();
    clearInterval(state.refreshTimer);
    // Power and sessions change without a status change: the glance is read again now and then.
    state.refreshTimer = setInterval(loadOverview, 15000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (token) logIn(token);
    });
    $("logout").addEventListener("click", () => logOut(""));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      loadStats();
    });
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        for (const [id, chart] of Object.entries(state.charts)) chart.setSize({ width: width(id), height: 220 });
        if (state.map) state.map.invalidateSize();
      }, 200);
    });
    const kept = sessionStorage.getItem(TOKEN_KEY);
    if (kept) logIn(kept);
  });
})();
