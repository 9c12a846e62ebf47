/*
 * ivoryos_plugin.js: browser client for IvoryOS plugin pages (plain ES2017, no build step).
 *
 * The plugin framework puts these in every plugin page's <head>:
 *   <meta name="csrf-token" content="...">
 *   <meta name="ivoryos-plugin" content='{"name", "namespace", "path", "actions"}'>
 *   <script src=".../vendor/socket.io.min.js"></script>
 *   <script src=".../ivoryos_plugin.js"></script>
 *
 *   const live = IvoryPlugin.connect();          // one connection per namespace per page
 *   const stop = live.subscribe("weight", v => ...);
 *   live.on("calls", data => ...);
 *   await live.emit("tare", {});                 // resolves with the server's ack
 *   await live.action("dispense", {grams: 5});   // POST to the plugin's actions route
 *   await live.action("dispense", form);         // the form's values, typed (IvoryPlugin.values): <input
 *                                                // type=number> sends 5, not "5"; a 400's field errors are
 *                                                // shown under their inputs (and cleared at the next send)
 *   IvoryPlugin.values(form);                    // {name: value} of a form's named controls, typed
 *   const past = await live.history("weight", {since: -600});  // a recorded stream's last 10 minutes
 *   <span data-ivoryos-live-state></span>        // shows the connection's state (text + data-state);
 *                                                // ="/ivoryos/balance" (namespace or name) picks one connection
 *   <span data-ivoryos-deck-state></span>        // shows whether a workflow holds the deck (idle / busy)
 *   <b data-ivoryos-live>12.5</b>                // a live value: greyed (data-stale="true") while disconnected
 *   <button data-ivoryos-hardware>Tare</button>  // marked (and titled) while the deck is busy
 *   IvoryPlugin.showErrors(form, err);           // a 400's per-field errors, next to [name=field] controls
 *   IvoryPlugin.camera("#cam", url);             // a camera's stream.mjpg: fps, "no signal", reconnect
 *
 * live.state: "connecting" | "connected" | "disconnected" | "refused". Reconnection is socket.io's own, plus a
 * rejoin (with backoff) after a server-side disconnect(); active subscriptions are re-sent on every connect.
 * The deck's state comes from the framework's deck.json (polled once a second while a page shows it and is
 * connected); <html> carries data-ivoryos-connection and data-ivoryos-deck for page CSS.
 * The script adds ivoryos_plugin.css (next to it) to the page, after the host's Bootstrap.
 */
(function (global) {
  "use strict";
  // If the script is included twice, keep the first copy so the page still has one connection per namespace.
  if (global.IvoryPlugin && global.IvoryPlugin.__ivoryosPlugin) return;

  // Take io now. IvoryOS's base.html loads another socket.io client later (from a CDN, which may
  // fail offline) and sets window.socket, so window.io can change or vanish after this point.
  const ioAtLoad = typeof global.io === "function" ? global.io : null;
  const STATE_ATTR = "data-ivoryos-live-state";
  const LIVE_ATTR = "data-ivoryos-live";
  const DECK_ATTR = "data-ivoryos-deck-state";
  const HARDWARE_ATTR = "data-ivoryos-hardware";
  const ERROR_ATTR = "data-ivoryos-error";
  const SCRIPT_URL = (document.currentScript && document.currentScript.src) || "";
  const STALE_TITLE = "Not live: the connection to the server is lost; this value may be out of date.";
  const DECK_TEXT = {idle: "deck idle", busy: "deck busy", unverified: "deck unverified", unknown: "deck ?"};
  const DECK_TITLE = {
    idle: "No workflow holds the deck: hardware actions run.",
    busy: "A workflow holds the deck: hardware actions are refused until it ends.",
    unverified: "The deck cannot be verified idle: hardware actions are refused.",
    unknown: "The deck's state is unknown (not connected).",
  };
  const RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener",
    "removeListener", "stream_error", "subscribe", "unsubscribe"];
  const META_FIX = 'render the page through the ivoryos_plugin framework (it adds <meta name="ivoryos-plugin">), ' +
    'or pass {namespace, path, actions} to IvoryPlugin.connect()';
  const connections = new Map(); // "path namespace" -> live
  let warnedMeta = false;

  function warn(...args) { console.warn("IvoryPlugin:", ...args); }

  function safeCall(fn, ...args) {
    try { fn(...args); } catch (err) { console.error("IvoryPlugin: a handler threw", err); }
  }

  function readMeta() {
    const el = document.querySelector('meta[name="ivoryos-plugin"]');
    if (!el) return {problem: 'the page has no <meta name="ivoryos-plugin">'};
    try {
      const parsed = JSON.parse(el.getAttribute("content") || "");
      if (parsed && typeof parsed === "object") return {meta: parsed};
    } catch (err) { /* reported below */ }
    return {problem: '<meta name="ivoryos-plugin"> does not hold a JSON object'};
  }

  function meta(overrides) {
    const found = readMeta();
    const m = Object.assign({}, found.meta || {});
    const o = overrides || {};
    for (const key of ["name", "namespace", "path", "actions", "token"]) {
      if (o[key] !== undefined && o[key] !== null) m[key] = o[key];
    }
    if (found.problem && !(o.namespace || o.actions) && !warnedMeta) {
      warnedMeta = true;
      warn(found.problem + "; " + META_FIX + ".");
    }
    return m;
  }

  function csrfToken() {
    const el = document.querySelector('meta[name="csrf-token"]') || document.querySelector('meta[name="csrf_token"]');
    if (el && el.getAttribute("content")) return el.getAttribute("content");
    const input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  function httpError(message, status, body, extra) {
    const err = new Error(message);
    err.status = status;
    err.body = body;
    err.busy = status === 409;
    err.errors = body && typeof body === "object" && body.errors ? body.errors : null;
    return Object.assign(err, extra || {});
  }

  function isForm(value) {
    return typeof HTMLFormElement !== "undefined" && value instanceof HTMLFormElement;
  }

  // A form passed as an action's arguments: its values, typed; its field errors shown under its inputs.
  async function postAction(actionsUrl, name, args) {
    if (!isForm(args)) return postJson(actionsUrl, name, args);
    clearErrors(args);
    try {
      return await postJson(actionsUrl, name, formValues(args));
    } catch (err) {
      if (err && err.status === 400) err.unplaced = showErrors(args, err);
      throw err;
    }
  }

  async function postJson(actionsUrl, name, args) {
    if (!actionsUrl) throw new Error("IvoryPlugin: no actions URL; " + META_FIX);
    if (typeof name !== "string" || !name) throw new TypeError("IvoryPlugin: the action name must be a non-empty string");
    const url = String(actionsUrl).replace(/\/?$/, "/") + encodeURIComponent(name);
    let res;
    try {
      res = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken()},
        body: JSON.stringify(args === undefined || args === null ? {} : args),
      });
    } catch (err) {
      throw httpError('action "' + name + '": network error (' + err.message + ")", 0, null);
    }
    const text = await res.text();
    let body = text ? text : null;
    let isJson = false;
    if (text) { try { body = JSON.parse(text); isJson = true; } catch (err) { /* keep the text */ } }
    if (res.ok && (isJson || !text)) return body;
    if (res.ok) {
      // e.g. an expired session redirected to the login page
      throw httpError('action "' + name + '": the server did not answer JSON (session expired?)', res.status, body,
        {redirected: res.redirected});
    }
    const message = (isJson && body && typeof body.error === "string" && body.error) || res.statusText || ("HTTP " + res.status);
    if (res.status === 409 && deck.timer !== null) pollDeck(); // show the busy deck at once
    throw httpError(message, res.status, body);
  }

  // ---------------------------------------------------------------- form values, typed
  // A form control's value is text, and actions are typed: {"to": "5"} is a 400 for `to: int`. These are the
  // values an action expects: numbers from <input type=number|range>, booleans from a lone checkbox, a list
  // from <select multiple> or from checkboxes sharing a name; data-type="number|int|float|bool|json|string" on
  // a control says it for any other. An empty number is null (the server names the field if it needs one);
  // text that is not a number is sent as it is, so the server's message names the field.
  const NOT_VALUES = "button, fieldset, object, output, input[type=submit], input[type=button], " +
    "input[type=reset], input[type=image], input[type=file]";

  function typed(text, type) {
    if (type === "number" || type === "int" || type === "integer" || type === "float") {
      const trimmed = String(text).trim();
      if (trimmed === "") return null;
      const n = Number(trimmed);
      return Number.isFinite(n) ? n : text;
    }
    if (type === "bool" || type === "boolean") {
      const t = String(text).trim().toLowerCase();
      return t === "true" || t === "on" || t === "1" || t === "yes" ? true
        : t === "false" || t === "off" || t === "0" || t === "no" || t === "" ? false : text;
    }
    if (type === "json") {
      try { return JSON.parse(text); } catch (err) { return text; }
    }
    return text;
  }

  function formValues(form) {
    const f = typeof form === "string" ? document.querySelector(form) : form;
    if (!isForm(f)) throw new TypeError("IvoryPlugin.values(form): form must be a <form> or its selector");
    const out = {};
    const controls = Array.from(f.elements).filter((el) => el.name && el.name !== "csrf_token" && !el.disabled
                                                           && !el.matches(NOT_VALUES));
    const boxes = {};
    controls.forEach((el) => { if (el.type === "checkbox") boxes[el.name] = (boxes[el.name] || 0) + 1; });
    for (const el of controls) {
      const declared = (el.getAttribute("data-type") || "").toLowerCase();
      const type = declared || (el.type === "number" || el.type === "range" ? "number" : "");
      if (el.type === "checkbox") {
        if (boxes[el.name] > 1) {  // a group: the checked ones' values
          if (!Array.isArray(out[el.name])) out[el.name] = [];
          if (el.checked) out[el.name].push(typed(el.value, declared));
        } else {
          out[el.name] = declared && declared !== "bool" && declared !== "boolean"
            ? (el.checked ? typed(el.value, declared) : null) : el.checked;
        }
      } else if (el.type === "radio") {
        if (el.checked) out[el.name] = typed(el.value, type);
        else if (!(el.name in out)) out[el.name] = null;
      } else if (el.multiple && el.selectedOptions) {
        out[el.name] = Array.from(el.selectedOptions).map((o) => typed(o.value, type));
      } else {
        out[el.name] = typed(el.value, type);
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- the framework's stylesheet
  function addStylesheet() {
    const href = SCRIPT_URL.replace(/ivoryos_plugin\.js(\?.*)?$/, "ivoryos_plugin.css");
    if (!SCRIPT_URL || href === SCRIPT_URL || !document.head) return;
    const links = Array.from(document.querySelectorAll('link[rel~="stylesheet"]'));
    if (links.some((l) => /\/ivoryos_plugin\.css(\?|$)/.test(l.href || ""))) return; // the dev shell links it
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    link.setAttribute("blocking", "render"); // no flash of unstyled controls
    document.head.appendChild(link);
  }

  // ---------------------------------------------------------------- field errors
  function rootOf(root) {
    const found = typeof root === "string" ? document.querySelector(root) : root;
    return found || document;
  }

  function quote(value) {
    return '"' + String(value).replace(/["\\]/g, "\\$&") + '"';
  }

  function clearErrors(root, field) {
    const r = rootOf(root);
    const only = field === undefined ? "" : "=" + quote(field);
    r.querySelectorAll("[" + ERROR_ATTR + only + "]").forEach((el) => el.remove());
    r.querySelectorAll("[data-ivoryos-invalid" + only + "]").forEach((el) => {
      el.classList.remove("is-invalid");
      el.removeAttribute("aria-invalid");
      el.removeAttribute("data-ivoryos-invalid");
    });
  }

  function errorsOf(err) {
    if (!err || typeof err !== "object") return {};
    const errors = err.errors || (err.body && typeof err.body === "object" ? err.body.errors : null);
    if (errors && typeof errors === "object") return errors;
    return err instanceof Error || "status" in err ? {} : err; // a plain {field: messages} object
  }

  const warnedBeside = new Set();

  // A message placed in a flex row lands beside its input, squeezing the row: say how to put it under.
  function warnBeside(feedback, field) {
    const row = feedback.parentElement;
    const style = row ? getComputedStyle(row) : null;
    if (!style || !/flex/.test(style.display) || /column/.test(style.flexDirection) || warnedBeside.has(field)) return;
    warnedBeside.add(field);
    warn('the message for "' + field + '" shows beside its input, not under it: the input is in a flex row; ' +
         'give it a box of its own, e.g. <div class="flex-grow-1"><input name="' + field + '"></div>.');
  }

  // Shows each field's messages next to its control (the element named like the field, or the one marked
  // data-field="field"), the way Bootstrap shows invalid fields; returns the messages no control was found for.
  function showErrors(root, err) {
    const r = rootOf(root);
    clearErrors(r);
    const unplaced = [];
    for (const [field, messages] of Object.entries(errorsOf(err))) {
      const text = (Array.isArray(messages) ? messages : [messages]).map(String).join(" ");
      let target = field === "_" ? null : r.querySelector("[name=" + quote(field) + "], [data-field=" + quote(field) + "]");
      if (!target) { unplaced.push(field === "_" ? text : field + ": " + text); continue; }
      const box = target.matches("input, select, textarea, button") ? null : target;
      const control = box ? box.querySelector("input, select, textarea") : target;
      const feedback = document.createElement("div");
      feedback.className = "invalid-feedback d-block ivp-field-error";
      feedback.setAttribute(ERROR_ATTR, field);
      feedback.id = "ivp-error-" + field.replace(/\W/g, "_") + "-" + Math.random().toString(36).slice(2, 8);
      feedback.textContent = text;
      if (box) box.appendChild(feedback);
      else (target.closest(".input-group") || target).insertAdjacentElement("afterend", feedback);
      warnBeside(feedback, field);
      if (control) {
        control.classList.add("is-invalid");
        control.setAttribute("aria-invalid", "true");
        control.setAttribute("data-ivoryos-invalid", field);
        control.setAttribute("aria-describedby", feedback.id);
        control.addEventListener("input", () => clearErrors(r, field), {once: true});
      }
    }
    return unplaced;
  }

  // ---------------------------------------------------------------- connection and deck state on the page
  const RANK = {connected: 0, connecting: 1, disconnected: 2, refused: 3};

  function pageState() {
    let worst = null;
    connections.forEach((live) => { if (worst === null || RANK[live.state] > RANK[worst]) worst = live.state; });
    return worst;
  }

  function renderState(live) {
    document.querySelectorAll("[" + STATE_ATTR + "]").forEach((el) => {
      const wanted = el.getAttribute(STATE_ATTR);
      if (wanted && wanted !== live.namespace && wanted !== live.name) return;
      el.textContent = live.state;
      el.setAttribute("data-state", live.state);
    });
    const stale = live.state === "disconnected" || live.state === "refused";
    document.querySelectorAll("[" + LIVE_ATTR + "]").forEach((el) => {
      const wanted = el.getAttribute(LIVE_ATTR);
      if (wanted && wanted !== live.namespace && wanted !== live.name) return;
      if (stale) {
        el.setAttribute("data-stale", "true");
        if (!el.hasAttribute("title") || el.getAttribute("data-ivoryos-titled") === "1") {
          el.setAttribute("title", STALE_TITLE);
          el.setAttribute("data-ivoryos-titled", "1");
        }
      } else {
        el.removeAttribute("data-stale");
        if (el.getAttribute("data-ivoryos-titled") === "1") { el.removeAttribute("title"); el.removeAttribute("data-ivoryos-titled"); }
      }
    });
    const overall = pageState();
    if (overall) document.documentElement.setAttribute("data-ivoryos-connection", overall);
    deckFollow();
  }

  const deck = {state: "unknown", busy: null, reason: "", run: null, fns: new Set(), timer: null, off: false,
                inflight: false};

  function deckUrl() {
    const m = readMeta().meta || {};
    if (typeof m.deck === "string" && m.deck) return m.deck;
    const url = SCRIPT_URL.replace(/static\/ivoryos_plugin\.js(\?.*)?$/, "deck.json");
    return url === SCRIPT_URL ? "" : url;
  }

  function setDeck(state, info) {
    const run = (info && info.run && typeof info.run.run_id === "number") ? info.run : null;
    const changed = state !== deck.state || (run && run.run_id) !== (deck.run && deck.run.run_id);
    deck.state = state;
    deck.run = run;
    deck.busy = state === "busy" ? true : state === "idle" ? false : null;
    deck.reason = (info && info.reason) || DECK_TITLE[state];
    document.documentElement.setAttribute("data-ivoryos-deck", state);
    document.querySelectorAll("[" + DECK_ATTR + "]").forEach((el) => {
      el.textContent = DECK_TEXT[state];
      el.setAttribute("data-state", state);
      el.setAttribute("title", deck.reason);
    });
    document.querySelectorAll("[" + HARDWARE_ATTR + "]").forEach((el) => {
      if (state === "busy" || state === "unverified") el.setAttribute("data-deck", state);
      else el.removeAttribute("data-deck");
    });
    if (changed) for (const fn of Array.from(deck.fns)) safeCall(fn, deckInfo());
  }

  // run: the IvoryOS run in progress ({run_id, run_name, step}) or null
  function deckInfo() { return {state: deck.state, busy: deck.busy, reason: deck.reason, run: deck.run}; }

  function deckWanted() {
    return !deck.off && (deck.fns.size > 0 || !!document.querySelector("[" + DECK_ATTR + "], [" + HARDWARE_ATTR + "]"));
  }

  async function pollDeck() {
    const url = deckUrl();
    if (!url || deck.inflight) return;
    deck.inflight = true;
    try {
      const res = await fetch(url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}});
      if (res.status === 404 || res.status === 401 || res.status === 403) {
        deck.off = true; // not served here (or not to this visitor): stop asking
        setDeck("unknown");
        return;
      }
      const body = await res.json();
      setDeck(!body.verified ? "unverified" : body.busy ? "busy" : "idle", body);
    } catch (err) {
      setDeck("unknown");
    } finally {
      deck.inflight = false;
    }
  }

  function deckFollow() {
    const live = pageState() === "connected" && deckWanted() && !document.hidden;
    if (live && deck.timer === null) {
      pollDeck();
      deck.timer = setInterval(pollDeck, 1000);
    } else if (!live && deck.timer !== null) {
      clearInterval(deck.timer);
      deck.timer = null;
    }
    if (pageState() !== "connected" && pageState() !== null && deck.state !== "unknown") setDeck("unknown");
  }
  document.addEventListener("visibilitychange", deckFollow);

  // ---- what both transports share: state and its listeners, stream-error fan-out, live.on's handlers,
  // the last value of each event, and the public members of a live object.
  function liveShell(m, opts) {
    const shell = {
      state: "connecting",
      live: null,
      stateFns: new Set(),
      errorFns: new Set(),
      streams: new Map(),  // stream -> Set of {fn, onError}
      userFns: new Map(),  // event -> Set of fns added with live.on
      last: new Map(),
    };
    shell.setState = function (next) {
      if (next === shell.state) return;
      shell.state = next;
      if (shell.live) renderState(shell.live);
      for (const fn of Array.from(shell.stateFns)) safeCall(fn, next);
    };
    shell.streamError = function (payload) {
      const p = payload && typeof payload === "object" ? payload : {stream: "", error: String(payload)};
      let handled = false;
      for (const entry of Array.from(shell.streams.get(p.stream) || [])) {
        if (entry.onError) { handled = true; safeCall(entry.onError, p); }
      }
      if (typeof opts.onError === "function") { handled = true; safeCall(opts.onError, p); }
      for (const fn of Array.from(shell.errorFns)) { handled = true; safeCall(fn, p); }
      if (!handled) warn('stream "' + p.stream + '": ' + p.error);
    };
    shell.addUserFn = function (event, fn) {
      if (typeof fn !== "function") throw new TypeError("IvoryPlugin: on(event, fn) needs a function");
      if (!shell.userFns.has(event)) shell.userFns.set(event, new Set());
      shell.userFns.get(event).add(fn);
    };
    // removes fn (or every fn) of live.on's for event; each removed one is passed to removed(f)
    shell.removeUserFns = function (event, fn, removed) {
      const fns = shell.userFns.get(event);
      if (!fns) return;
      for (const f of fn ? [fn] : Array.from(fns)) {
        if (fns.delete(f) && removed) removed(f);
      }
      if (!fns.size) shell.userFns.delete(event);
    };
    shell.refusedError = function () {
      return new Error('IvoryPlugin: the server refused the connection to "' + m.namespace + '"');
    };
    shell.expose = function (own) {
      const live = {
        get state() { return shell.state; },
        name: m.name,
        namespace: m.namespace,
        meta: m,
        onState(fn) { shell.stateFns.add(fn); return () => shell.stateFns.delete(fn); },
        onStreamError(fn) { shell.errorFns.add(fn); return () => shell.errorFns.delete(fn); },
        action: (name, args) => postAction(m.actions, name, args),
        history: (name, histOpts) => getHistory(m.actions, name, histOpts),
        last: (event) => shell.last.get(event),
      };
      shell.live = Object.assign(live, own);
      return shell.live;
    };
    return shell;
  }

  function createLive(m, opts, key) {
    let ioFn = ioAtLoad;
    if (!ioFn && typeof global.io === "function") {
      ioFn = global.io;
      warn("socket.io was loaded after ivoryos_plugin.js; load vendor/socket.io.min.js first.");
    }
    if (!ioFn) throw new Error("IvoryPlugin: the Socket.IO client is missing; load vendor/socket.io.min.js before ivoryos_plugin.js");

    const socket = ioFn(m.namespace, {
      path: m.path || "/socket.io",
      auth: (cb) => cb(m.token ? {csrf: csrfToken(), token: m.token} : {csrf: csrfToken()}),
      reconnectionDelayMax: 10000,
    });
    const ackTimeout = opts.timeout || 10000;
    const shell = liveShell(m, opts);
    const {streams, userFns, last, setState, streamError} = shell;
    const dispatchers = new Map(); // stream -> the one socket listener fanning out to the set
    let closed = false;
    let rejoinTimer = null;
    let kicks = 0;
    let connectedAt = 0;

    function sendSubscribe(stream) {
      socket.emit("subscribe", {stream: stream}, (ack) => {
        if (ack && ack.ok === false) streamError({stream: stream, error: ack.error || "subscribe refused"});
      });
    }

    socket.onAny((event, value) => { last.set(event, value); });
    socket.on("stream_error", streamError);
    socket.on("connect", () => {
      connectedAt = Date.now();
      setState("connected");
      for (const stream of streams.keys()) sendSubscribe(stream); // the server forgets them with the old sid
    });
    socket.on("disconnect", (reason) => {
      setState("disconnected");
      // socket.io only reconnects by itself after transport loss. After a server-side disconnect(), rejoin
      // with a backoff; if the server then refuses the connect, the state becomes "refused" and we stop.
      if (reason === "io server disconnect" && !closed && opts.rejoin !== false) {
        if (Date.now() - connectedAt > 10000) kicks = 0;
        const delay = Math.min(1000 * Math.pow(2, kicks++), 10000);
        rejoinTimer = setTimeout(() => {
          rejoinTimer = null;
          if (!closed && !socket.connected) socket.connect();
        }, delay);
      }
    });
    socket.on("connect_error", (err) => {
      const message = (err && err.message) || "";
      // !socket.active: the server refused the namespace connect (socket.io will not retry)
      if (!socket.active || /unauthori[sz]ed|forbidden|rejected|refused/i.test(message)) {
        setState("refused");
        if (!socket.active) warn('the server refused the connection to "' + m.namespace + '": ' + message);
      } else {
        setState("disconnected"); // socket.io keeps retrying
      }
    });

    function subscribe(stream, fn, subOpts) {
      if (typeof stream !== "string" || !stream || RESERVED.indexOf(stream) >= 0) {
        throw new TypeError("IvoryPlugin: bad stream name " + JSON.stringify(stream));
      }
      if (typeof fn !== "function") throw new TypeError("IvoryPlugin: subscribe(stream, fn) needs a function");
      let entries = streams.get(stream);
      if (!entries) {
        entries = new Set();
        streams.set(stream, entries);
        const dispatch = (...args) => { for (const e of Array.from(entries)) safeCall(e.fn, ...args); };
        dispatchers.set(stream, dispatch);
        socket.on(stream, dispatch);
      }
      const entry = {fn: fn, onError: (subOpts && subOpts.onError) || fn.onError || null};
      entries.add(entry);
      if (entries.size === 1 && socket.connected) sendSubscribe(stream); // else the connect handler does it
      let active = true;
      return function unsubscribe() {
        if (!active) return;
        active = false;
        entries.delete(entry);
        if (entries.size || streams.get(stream) !== entries) return;
        streams.delete(stream);
        socket.off(stream, dispatchers.get(stream));
        dispatchers.delete(stream);
        if (socket.connected) socket.emit("unsubscribe", {stream: stream});
      };
    }

    function on(event, fn) {
      shell.addUserFn(event, fn);
      socket.on(event, fn);
      return () => off(event, fn);
    }

    function off(event, fn) {
      shell.removeUserFns(event, fn, (f) => socket.off(event, f)); // never the stream dispatchers or our own listeners
    }

    function emit(event, data, emitOpts) {
      const ms = (emitOpts && emitOpts.timeout) || ackTimeout;
      return new Promise((resolve, reject) => {
        if (closed) throw new Error("IvoryPlugin: the connection is closed");
        if (shell.state === "refused") throw shell.refusedError();
        const args = data === undefined ? [] : [data];
        socket.timeout(ms).emit(event, ...args, (err, ...acks) => {
          if (err) reject(new Error('IvoryPlugin: no reply to "' + event + '" within ' + ms + " ms"));
          else resolve(acks.length > 1 ? acks : acks[0]);
        });
      });
    }

    function close() {
      if (closed) return;
      closed = true;
      clearTimeout(rejoinTimer);
      socket.disconnect();
      setState("disconnected");
      if (connections.get(key) === live) connections.delete(key);
    }

    const live = shell.expose({
      socket: socket,
      subscribe: subscribe,
      on: on,
      off: off,
      emit: emit,
      close: close,
    });
    return live;
  }

  // ---- the same live API over a plain WebSocket (ivoryos-edge, where Socket.IO does not run): JSON frames
  // {op: subscribe|unsubscribe|emit, id} up; {type: event|ack|deck|error|refused} down. Reconnects with backoff.
  function createWsLive(m, opts, key) {
    const ackTimeout = opts.timeout || 10000;
    const shell = liveShell(m, opts);
    const {streams, userFns, last, setState, streamError} = shell;
    const pending = new Map();   // ack id -> {resolve, timer}
    let closed = false;
    let socket = null;
    let nextId = 1;
    let tries = 0;
    let retryTimer = null;

    function url() {
      const path = m.live || (m.namespace + "/live");
      const base = new URL(path, global.location.href);
      base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
      if (m.token) base.searchParams.set("token", m.token);
      return base.toString();
    }

    function send(message) {
      if (socket && socket.readyState === 1) { socket.send(JSON.stringify(message)); return true; }
      return false;
    }

    function request(message, ms) {
      return new Promise((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error('IvoryPlugin: no reply to "' + (message.event || message.op) + '" within ' + ms + " ms"));
        }, ms);
        pending.set(id, {resolve: resolve, timer: timer});
        if (!send(Object.assign({id: id}, message))) {
          clearTimeout(timer);
          pending.delete(id);
          reject(new Error("IvoryPlugin: not connected"));
        }
      });
    }

    function sendSubscribe(stream) {
      request({op: "subscribe", stream: stream}, ackTimeout).then((ack) => {
        if (ack && ack.ok === false) streamError({stream: stream, error: ack.error || "subscribe refused"});
      }, () => {});
    }

    function dispatch(event, value) {
      last.set(event, value);
      if (event === "stream_error") streamError(value);
      for (const entry of Array.from(streams.get(event) || [])) safeCall(entry.fn, value);
      for (const fn of Array.from(userFns.get(event) || [])) safeCall(fn, value);
    }

    function open() {
      if (closed) return;
      socket = new WebSocket(url());
      socket.onopen = () => {
        setState("connected");
        for (const stream of streams.keys()) sendSubscribe(stream);
      };
      socket.onmessage = (msg) => {
        let data;
        try { data = JSON.parse(msg.data); } catch (err) { return; }
        if (!data || typeof data !== "object") return;
        if (data.type === "event") dispatch(data.event, data.data);
        else if (data.type === "ack") {
          const waiting = pending.get(data.id);
          if (waiting) { pending.delete(data.id); clearTimeout(waiting.timer); waiting.resolve(data.data); }
        } else if (data.type === "deck") {
          setDeck(!data.verified ? "unverified" : data.busy ? "busy" : "idle", data);
        } else if (data.type === "refused") {
          closed = true;
          setState("refused");
          warn('the server refused the connection to "' + m.namespace + '": ' + data.error);
        } else if (data.type === "error") {
          if (data.stream) streamError({stream: data.stream, error: data.error});
          else warn(data.error);
        }
      };
      socket.onclose = () => {
        socket = null;
        if (shell.state === "connected") tries = 0;
        if (shell.state !== "refused") setState("disconnected");
        if (closed || opts.rejoin === false) return;
        const delay = Math.min(500 * Math.pow(2, tries++), 10000);
        retryTimer = setTimeout(() => { retryTimer = null; open(); }, delay);
      };
    }

    function subscribe(stream, fn, subOpts) {
      if (typeof stream !== "string" || !stream || RESERVED.indexOf(stream) >= 0) {
        throw new TypeError("IvoryPlugin: bad stream name " + JSON.stringify(stream));
      }
      if (typeof fn !== "function") throw new TypeError("IvoryPlugin: subscribe(stream, fn) needs a function");
      let entries = streams.get(stream);
      if (!entries) { entries = new Set(); streams.set(stream, entries); }
      const entry = {fn: fn, onError: (subOpts && subOpts.onError) || fn.onError || null};
      entries.add(entry);
      if (entries.size === 1 && shell.state === "connected") sendSubscribe(stream);
      let active = true;
      return function unsubscribe() {
        if (!active) return;
        active = false;
        entries.delete(entry);
        if (entries.size || streams.get(stream) !== entries) return;
        streams.delete(stream);
        send({op: "unsubscribe", stream: stream});
      };
    }

    function on(event, fn) {
      shell.addUserFn(event, fn);
      return () => off(event, fn);
    }

    function off(event, fn) {
      shell.removeUserFns(event, fn, null);
    }

    function emit(event, data, emitOpts) {
      if (closed) return Promise.reject(new Error("IvoryPlugin: the connection is closed"));
      if (shell.state === "refused") return Promise.reject(shell.refusedError());
      const message = {op: "emit", event: event};
      if (data !== undefined) message.data = data;
      return request(message, (emitOpts && emitOpts.timeout) || ackTimeout);
    }

    function close() {
      if (closed && shell.state !== "refused") return;
      closed = true;
      clearTimeout(retryTimer);
      if (socket) socket.close();
      setState("disconnected");
      if (connections.get(key) === live) connections.delete(key);
    }

    const live = shell.expose({
      socket: null,
      transport: "websocket",
      subscribe: subscribe,
      on: on,
      off: off,
      emit: emit,
      close: close,
    });
    open();
    return live;
  }

  // ---- history: a recorded stream's values, so a chart starts filled. since/until: epoch seconds, or
  // negative seconds from now (since: -600 = the last ten minutes); run: an IvoryOS run id.
  async function getHistory(actionsUrl, name, opts) {
    if (!actionsUrl) throw new Error("IvoryPlugin: no plugin URL; " + META_FIX);
    if (typeof name !== "string" || !name) throw new TypeError("IvoryPlugin: history(name) needs a stream name");
    const o = opts || {};
    const query = new URLSearchParams();
    for (const [key, param] of [["since", "since"], ["until", "until"], ["run", "run"], ["maxPoints", "max_points"]]) {
      if (o[key] !== undefined && o[key] !== null) query.set(param, String(o[key]));
    }
    const base = actionsUrl.replace(/actions\/?$/, "");
    const reply = await fetch(base + "history/" + encodeURIComponent(name) + (query.toString() ? "?" + query : ""),
                              {credentials: "same-origin", headers: {Accept: "application/json"}});
    let body = null;
    try { body = await reply.json(); } catch (err) { body = null; }
    if (!reply.ok) throw httpError((body && body.error) || "HTTP " + reply.status, reply.status, body);
    return body;
  }

  function connect(opts) {
    const o = opts || {};
    const m = meta(o);
    if (!m.namespace) throw new Error("IvoryPlugin.connect: no namespace; " + META_FIX);
    const ws = m.transport === "websocket"; // ivoryos-edge: the plugin's WebSocket channel, not Socket.IO
    const key = ws ? "ws " + (m.live || m.namespace + "/live") : (m.path || "/socket.io") + " " + m.namespace;
    let live = connections.get(key);
    if (!live) {
      live = ws ? createWsLive(m, o, key) : createLive(m, o, key);
      connections.set(key, live);
      renderState(live);
    }
    return live;
  }

  // ---- cameras: a plugin camera's MJPEG stream in an <img>, read with fetch() so the page knows
  // each frame: the measured frame rate, a "no signal" placeholder, reconnect with backoff.
  const CRLF2 = [13, 10, 13, 10];

  function indexOf(buf, seq, from) {
    outer: for (let i = from || 0; i <= buf.length - seq.length; i++) {
      for (let j = 0; j < seq.length; j++) if (buf[i + j] !== seq[j]) continue outer;
      return i;
    }
    return -1;
  }

  async function readParts(response, onFrame) {
    const reader = response.body.getReader();
    const text = new TextDecoder();
    let buf = new Uint8Array(0);
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      const grown = new Uint8Array(buf.length + value.length);
      grown.set(buf);
      grown.set(value, buf.length);
      buf = grown;
      for (;;) {
        const end = indexOf(buf, CRLF2);
        if (end < 0) break;
        const head = text.decode(buf.subarray(0, end));
        const length = /content-length:\s*(\d+)/i.exec(head);
        if (!length) throw new Error("a camera frame without Content-Length");
        const start = end + 4, size = Number(length[1]);
        if (buf.length < start + size + 2) break;
        onFrame(buf.slice(start, start + size), head);
        buf = buf.slice(start + size + 2);
      }
    }
  }

  function camera(target, url, opts) {
    const o = opts || {};
    const img = typeof target === "string" ? document.querySelector(target) : target;
    if (!img || img.tagName !== "IMG") throw new TypeError("IvoryPlugin.camera(img, url): img must be an <img> or its selector");
    if (typeof url !== "string" || !url) throw new TypeError("IvoryPlugin.camera(img, url): url must be the camera's stream.mjpg URL");
    const box = img.parentElement;
    box.classList.add("ivp-camera");
    let placeholder = box.querySelector(".ivp-camera-nosignal");
    if (!placeholder) {
      placeholder = document.createElement("div");
      placeholder.className = "ivp-camera-nosignal";
      placeholder.textContent = o.noSignal || "no signal";
      box.appendChild(placeholder);
    }
    let fpsLabel = box.querySelector(".ivp-camera-fps");
    if (!fpsLabel && o.showFps !== false) {
      fpsLabel = document.createElement("span");
      fpsLabel.className = "ivp-camera-fps";
      box.appendChild(fpsLabel);
    }
    const timeoutMs = o.timeoutMs || 4000;
    let times = [], retry = 0, timer = null, controller = null, watchdog = null, closed = false, shown = null;
    const state = {frames: 0, fps: 0, signal: false};

    function show(signal) {
      state.signal = signal;
      img.dataset.signal = signal ? "live" : "none";
      placeholder.hidden = signal;
      img.style.visibility = signal ? "" : "hidden";
      if (!signal && fpsLabel) fpsLabel.textContent = "";
    }
    function frame(jpeg) {
      const now = performance.now();
      times.push(now);
      times = times.filter((t) => now - t <= 2000);
      state.frames += 1;
      state.fps = times.length > 1 ? (times.length - 1) * 1000 / (now - times[0]) : 0;
      img.dataset.fps = state.fps.toFixed(1);
      img.dataset.frames = String(state.frames);
      if (fpsLabel) fpsLabel.textContent = state.fps.toFixed(1) + " fps";
      const old = shown;
      shown = URL.createObjectURL(new Blob([jpeg], {type: "image/jpeg"}));
      img.src = shown;
      if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
      retry = 0;
      show(true);
      arm();
    }
    function arm() {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => { if (controller) controller.abort(); }, timeoutMs);
    }
    function again() {
      if (closed) return;
      show(false);
      retry = Math.min(retry + 1, 6);
      timer = setTimeout(start, Math.min(500 * 2 ** (retry - 1), 10000));
    }
    function start() {
      if (closed) return;
      controller = new AbortController();
      arm();
      fetch(url, {credentials: "same-origin", signal: controller.signal, cache: "no-store"})
        .then((response) => {
          if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
          return readParts(response, frame);
        })
        .catch(() => {})
        .then(() => { clearTimeout(watchdog); again(); });
    }
    show(false);
    start();
    return {
      state: () => Object.assign({}, state),
      close() {
        closed = true;
        clearTimeout(timer);
        clearTimeout(watchdog);
        if (controller) controller.abort();
      },
    };
  }

  addStylesheet();
  if (document.readyState === "loading") {
    // this script runs in <head>: show states on elements that did not exist yet
    document.addEventListener("DOMContentLoaded", () => { setDeck(deck.state); connections.forEach(renderState); });
  }

  global.IvoryPlugin = {
    __ivoryosPlugin: true,
    version: "0.1.0",
    meta: meta,
    connect: connect,
    action: (name, args, opts) => postAction(meta(opts).actions, name, args),
    csrfToken: csrfToken,
    showErrors: showErrors,
    clearErrors: (root) => clearErrors(root),
    values: formValues,
    camera: camera,
    deck: deckInfo,
    onDeck(fn) {
      if (typeof fn !== "function") throw new TypeError("IvoryPlugin: onDeck(fn) needs a function");
      deck.fns.add(fn);
      deckFollow();
      return () => deck.fns.delete(fn);
    },
  };
})(window);
