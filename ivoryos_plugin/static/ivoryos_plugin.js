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
 *   <span data-ivoryos-live-state></span>        // shows the connection's state (text + data-state);
 *                                                // ="/ivoryos/balance" (namespace or name) picks one connection
 *
 * live.state: "connecting" | "connected" | "disconnected" | "refused". Reconnection is socket.io's own, plus a
 * rejoin (with backoff) after a server-side disconnect(); active subscriptions are re-sent on every connect.
 */
(function (global) {
  "use strict";
  // If the script is included twice, keep the first copy so the page still has one connection per namespace.
  if (global.IvoryPlugin && global.IvoryPlugin.__ivoryosPlugin) return;

  // Take io now. IvoryOS's base.html loads another socket.io client later (from a CDN, which may
  // fail offline) and sets window.socket, so window.io can change or vanish after this point.
  const ioAtLoad = typeof global.io === "function" ? global.io : null;
  const STATE_ATTR = "data-ivoryos-live-state";
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

  async function postAction(actionsUrl, name, args) {
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
    throw httpError(message, res.status, body);
  }

  function renderState(live) {
    document.querySelectorAll("[" + STATE_ATTR + "]").forEach((el) => {
      const wanted = el.getAttribute(STATE_ATTR);
      if (wanted && wanted !== live.namespace && wanted !== live.name) return;
      el.textContent = live.state;
      el.setAttribute("data-state", live.state);
    });
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
    const stateFns = new Set();
    const errorFns = new Set();
    const streams = new Map();     // stream -> Set of {fn, onError}
    const dispatchers = new Map(); // stream -> the one socket listener fanning out to the set
    const userFns = new Map();     // event -> Set of fns added with live.on
    const last = new Map();
    let state = "connecting";
    let closed = false;
    let rejoinTimer = null;
    let kicks = 0;
    let connectedAt = 0;

    function setState(next) {
      if (next === state) return;
      state = next;
      renderState(live);
      for (const fn of Array.from(stateFns)) safeCall(fn, next);
    }

    function streamError(payload) {
      const p = payload && typeof payload === "object" ? payload : {stream: "", error: String(payload)};
      let handled = false;
      for (const entry of Array.from(streams.get(p.stream) || [])) {
        if (entry.onError) { handled = true; safeCall(entry.onError, p); }
      }
      if (typeof opts.onError === "function") { handled = true; safeCall(opts.onError, p); }
      for (const fn of Array.from(errorFns)) { handled = true; safeCall(fn, p); }
      if (!handled) warn('stream "' + p.stream + '": ' + p.error);
    }

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
      if (typeof fn !== "function") throw new TypeError("IvoryPlugin: on(event, fn) needs a function");
      if (!userFns.has(event)) userFns.set(event, new Set());
      userFns.get(event).add(fn);
      socket.on(event, fn);
      return () => off(event, fn);
    }

    function off(event, fn) {
      const fns = userFns.get(event);
      if (!fns) return;
      for (const f of fn ? [fn] : Array.from(fns)) {
        if (fns.delete(f)) socket.off(event, f); // never the stream dispatchers or our own listeners
      }
      if (!fns.size) userFns.delete(event);
    }

    function emit(event, data, emitOpts) {
      const ms = (emitOpts && emitOpts.timeout) || ackTimeout;
      return new Promise((resolve, reject) => {
        if (closed) throw new Error("IvoryPlugin: the connection is closed");
        if (state === "refused") throw new Error('IvoryPlugin: the server refused the connection to "' + m.namespace + '"');
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

    const live = {
      get state() { return state; },
      name: m.name,
      namespace: m.namespace,
      meta: m,
      socket: socket,
      onState(fn) { stateFns.add(fn); return () => stateFns.delete(fn); },
      onStreamError(fn) { errorFns.add(fn); return () => errorFns.delete(fn); },
      subscribe: subscribe,
      on: on,
      off: off,
      emit: emit,
      action: (name, args) => postAction(m.actions, name, args),
      last: (event) => last.get(event),
      close: close,
    };
    return live;
  }

  function connect(opts) {
    const o = opts || {};
    const m = meta(o);
    if (!m.namespace) throw new Error("IvoryPlugin.connect: no namespace; " + META_FIX);
    const key = (m.path || "/socket.io") + " " + m.namespace;
    let live = connections.get(key);
    if (!live) {
      live = createLive(m, o, key);
      connections.set(key, live);
      renderState(live);
    }
    return live;
  }

  if (document.readyState === "loading") {
    // this script runs in <head>: show states on elements that did not exist yet
    document.addEventListener("DOMContentLoaded", () => connections.forEach(renderState));
  }

  global.IvoryPlugin = {
    __ivoryosPlugin: true,
    version: "0.1.0",
    meta: meta,
    connect: connect,
    action: (name, args, opts) => postAction(meta(opts).actions, name, args),
    csrfToken: csrfToken,
  };
})(window);
