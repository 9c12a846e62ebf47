/* Plate map page: colour the SVG wells from live "well" events; set, dispense and clear. */
(function () {
  "use strict";
  // The same scale as plate.py's colour(): light to dark blue over 0..1, white when empty.
  const STOPS = [[0.0, [239, 246, 255]], [0.5, [66, 146, 198]], [1.0, [8, 48, 107]]];
  const WELLS = [];
  for (const row of "ABCDEFGH") for (let col = 1; col <= 12; col++) WELLS.push(row + col);
  const BUSY = "The pump is busy: an IvoryOS workflow is using the deck. Try again when it finishes.";
  const $ = (id) => document.getElementById(id);
  const live = IvoryPlugin.connect();

  function colour(value) {
    if (value === null || value === undefined) return "#ffffff";
    const v = Math.min(Math.max(Number(value), 0), 1);
    for (let i = 1; i < STOPS.length; i++) {
      const [lo, c0] = STOPS[i - 1];
      const [hi, c1] = STOPS[i];
      if (v <= hi) {
        const f = (v - lo) / (hi - lo);
        return "#" + c0.map((a, k) => Math.round(a + (c1[k] - a) * f).toString(16).padStart(2, "0")).join("");
      }
    }
    return "#08306b";
  }

  function paint(well, value) {
    const el = $("well-" + well);
    if (!el) return;
    el.setAttribute("fill", colour(value));
    el.setAttribute("data-value", value === null || value === undefined ? "" : String(value));
    const title = el.querySelector("title");
    if (title) title.textContent = value === null || value === undefined ? well : well + ": " + Number(value).toPrecision(3);
  }

  function paintAll(state) {
    const wells = (state && state.wells) || {};
    for (const well of WELLS) paint(well, wells[well]);
    if (state && state.next) $("pm-next").textContent = state.next;
  }

  function message(text, kind) {
    $("pm-message").textContent = text;
    $("pm-message").setAttribute("data-kind", kind || "");
  }

  live.on("well", (event) => {
    paint(event.well, event.value);
    const el = $("well-" + event.well);
    if (el) { el.classList.add("pm-flash"); setTimeout(() => el.classList.remove("pm-flash"), 600); }
    if (event.source !== "set_well") {
      const i = WELLS.indexOf(event.well);
      $("pm-next").textContent = WELLS[(i + 1) % WELLS.length];
    }
  });
  live.on("plate", paintAll);
  live.onState((state) => {  // after a reconnect, catch up with changes made meanwhile
    if (state === "connected") live.emit("snapshot").then(paintAll).catch(() => {});
  });

  async function act(name, args) {
    message("", "");
    IvoryPlugin.clearErrors($("pm-controls"));
    try {
      return await live.action(name, args);
    } catch (err) {
      IvoryPlugin.showErrors($("pm-controls"), err);  // {"well": [...]} under the Well input
      message(err.busy ? BUSY : err.message, err.busy ? "busy" : "error");
      return null;
    }
  }

  // a number input that is not a number sends its text, so the server names the field
  const number = (id) => ($(id).value.trim() === "" || isNaN(Number($(id).value)) ? $(id).value : Number($(id).value));
  $("pm-set").addEventListener("click", () =>
    act("set_well", {well: $("pm-well").value.trim().toUpperCase(), value: number("pm-value")}));
  $("pm-dispense").addEventListener("click", () => act("dispense", {volume_ml: number("pm-volume")}));
  $("pm-clear").addEventListener("click", () => act("clear", {}));
  $("pm-plate").addEventListener("click", (ev) => {
    const well = ev.target.getAttribute && ev.target.getAttribute("data-well");
    if (well) $("pm-well").value = well;
  });
})();
