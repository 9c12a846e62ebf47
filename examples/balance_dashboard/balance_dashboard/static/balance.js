/* Balance dashboard page: live chart (uPlot) that opens with the recorded last ten minutes, stability
   badge, tare and unit actions, the CSV of the run in progress (or the last one). */
(function () {
  "use strict";
  const WINDOW_S = 600;  // the chart's span: the last ten minutes, scrolling
  const MAX_POINTS = 12000;  // ten minutes at the highest rate (20 Hz)
  const HISTORY_POINTS = 1200;  // what the recorded ten minutes come back as (downsampled beyond that)
  const DECIMALS = {g: 4, mg: 1, kg: 7};
  const GRAMS_PER = {g: 1, mg: 0.001, kg: 1000};
  const BUSY = "The balance is busy: an IvoryOS workflow is using the deck. Try again when it finishes.";
  const $ = (id) => document.getElementById(id);
  const live = IvoryPlugin.connect();
  const xs = [];
  const ys = [];
  const root = $("bd-root");
  let unit = root.getAttribute("data-unit");
  let chart = null;
  let lastRun = null;  // the newest IvoryOS run seen: the one whose CSV the page links

  function decimals(u) { return DECIMALS[u] === undefined ? 4 : DECIMALS[u]; }

  // The x range: the ten minutes up to the newest reading, or up to now before the first one arrives
  // (uPlot gives no max for an empty chart, which would put the axis in January 1970).
  function lastWindow(max) {
    const end = typeof max === "number" && isFinite(max) && max > 0 ? max : Date.now() / 1000;
    return [end - WINDOW_S, end];
  }

  function makeChart() {
    const el = $("bd-chart");
    el.textContent = "";
    if (typeof uPlot !== "function") {
      el.textContent = "The chart library (uPlot) did not load: run the framework's install step (npm ci).";
      return;
    }
    chart = new uPlot({
      width: Math.max(320, el.clientWidth || 640),
      height: 300,
      scales: {
        x: {time: true, range: (u, min, max) => lastWindow(max)},  // the last ten minutes, scrolling
        y: {range: (u, min, max) => (max - min < 1e-9 ? [min - 1, max + 1] : [min, max])},
      },
      series: [{}, {label: "weight (" + unit + ")", stroke: "#1f77b4", width: 2}],
      axes: [{}, {label: unit, size: 80, values: (u, ticks) => ticks.map((v) => v.toFixed(decimals(unit)))}],
    }, [xs, ys], el);
    el.uplot = chart;  // for the browser's console (and the tests): its scales and data
  }

  function message(text, kind) {
    const el = $("bd-message");
    el.textContent = text;
    el.setAttribute("data-kind", kind || "");
  }

  function trim() {
    if (xs.length > MAX_POINTS) { xs.splice(0, xs.length - MAX_POINTS); ys.splice(0, ys.length - MAX_POINTS); }
    if (chart) chart.setData([xs, ys]);
  }

  // The recorded readings of the last ten minutes, put before the live ones (the stream is recorded
  // in grams: each is drawn in the chart's unit). Downsampled points are drawn at their mean.
  async function loadHistory() {
    root.setAttribute("data-history", "loading");
    try {
      const past = await live.history("weight", {since: -WINDOW_S, maxPoints: HISTORY_POINTS});
      const first = xs.length ? xs[0] : Infinity;
      const hx = [];
      const hy = [];
      for (const p of past.points) {
        const grams = past.downsampled ? p.mean : p.value && p.value.grams;
        if (typeof grams === "number" && p.t < first) { hx.push(p.t); hy.push(grams / GRAMS_PER[unit]); }
      }
      xs.unshift(...hx);
      ys.unshift(...hy);
      trim();
      root.setAttribute("data-history-points", String(hx.length));
      root.setAttribute("data-history", "loaded");
      if (lastRun === null && typeof past.last_run === "number") showRun(past.last_run, false);
    } catch (err) {
      root.setAttribute("data-history", "failed");
      message("The recorded readings did not load (" + err.message + "): the chart shows live readings only.", "error");
    }
  }

  function showRun(runId, inProgress) {
    lastRun = runId;
    const link = $("bd-run-csv");
    link.href = link.getAttribute("data-base") + "?run=" + encodeURIComponent(runId);
    link.textContent = "CSV of run " + runId + (inProgress ? " (in progress)" : "");
    link.setAttribute("data-run", String(runId));
    link.hidden = false;
  }

  live.subscribe("weight", (r) => {
    if (r.unit !== unit) {  // the chart's unit changed in the settings: start a fresh chart
      unit = r.unit;
      xs.length = 0;
      ys.length = 0;
      if (chart) { chart.destroy(); chart = null; }
      makeChart();
      loadHistory();
    }
    xs.push(r.t);
    ys.push(r.value);
    trim();
    $("bd-value").textContent = r.value.toFixed(decimals(r.unit));
    $("bd-unit").textContent = r.unit;
    const badge = $("bd-stable");
    badge.setAttribute("data-stable", r.stable ? "true" : "false");
    badge.textContent = r.stable ? "stable" : "settling";
    $("bd-balance-unit-now").textContent = r.balance_unit;
  }, {onError: (e) => message("Reading failed: " + e.error, "error")});

  async function act(name, args, done) {
    const buttons = [$("bd-tare"), $("bd-set-unit")];
    buttons.forEach((b) => { b.disabled = true; });
    IvoryPlugin.clearErrors($("bd-controls"));
    message("", "");
    try {
      const reply = await live.action(name, args);
      message(done(reply), "ok");
    } catch (err) {
      IvoryPlugin.showErrors($("bd-controls"), err);  // e.g. {"unit": [...]} next to the unit select
      message(err.busy ? BUSY : err.message, err.busy ? "busy" : "error");
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  $("bd-tare").addEventListener("click", () => act("tare", {}, () => "Tared."));
  $("bd-set-unit").addEventListener("click", () =>
    act("set_unit", {unit: $("bd-balance-unit").value}, (reply) => "The balance now reads in " + reply.unit + "."));
  // Before any click: say so while a workflow holds the deck (the framework polls its state), and
  // link the CSV of the run in progress (which stays linked after it ends).
  IvoryPlugin.onDeck((deck) => {
    $("bd-busy").hidden = !deck.busy;
    if (deck.run) showRun(deck.run.run_id, true);
    else if (lastRun !== null) showRun(lastRun, false);
  });
  window.addEventListener("resize", () => {
    if (chart) chart.setSize({width: Math.max(320, $("bd-chart").clientWidth), height: 300});
  });
  makeChart();
  loadHistory();
})();
