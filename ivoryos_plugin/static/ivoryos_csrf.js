/* ivoryos_plugin: IvoryOS's own pages send the session's CSRF token (ivoryos_plugin.run, ivoryos_csrf).
 *
 * Loaded into every IvoryOS page before IvoryOS's own scripts (hosts/hardening/pages.py), it reads
 * <meta name="csrf-token"> and
 *   - adds the X-CSRFToken header to same-origin fetch() and XMLHttpRequest calls (jQuery's $.ajax
 *     too) whose method is not GET, HEAD or OPTIONS;
 *   - gives a POST form to this server a hidden csrf_token field when it is submitted (the submit
 *     event, form.submit() and form.requestSubmit()): forms added by scripts after the page loaded;
 *   - fetches a fresh token from data-refresh (/ivoryos/plugins/csrf.json) every 20 minutes, so a
 *     page left open for hours still works (a token lasts an hour).
 * Requests to other origins never get the token.
 */
(function () {
  "use strict";
  if (window.__ivoryosPluginCsrf) return;
  window.__ivoryosPluginCsrf = true;
  var SAFE = /^(GET|HEAD|OPTIONS|TRACE)$/i;
  var HEADER = "X-CSRFToken";
  var script = document.currentScript;
  var refreshUrl = script ? script.getAttribute("data-refresh") : null;

  function token() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  function sameOrigin(url) {
    try {
      return new URL(url, document.baseURI).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  // fetch(input, init): a Request's own method and headers count unless init replaces them
  var originalFetch = window.fetch;
  if (typeof originalFetch === "function") {
    window.fetch = function (input, init) {
      var isRequest = typeof Request !== "undefined" && input instanceof Request;
      var method = (init && init.method) || (isRequest ? input.method : "GET");
      var url = isRequest ? input.url : String(input);
      if (!SAFE.test(method) && sameOrigin(url)) {
        var headers = new Headers((init && init.headers) || (isRequest ? input.headers : undefined));
        if (!headers.has(HEADER)) {
          headers.set(HEADER, token());
          init = Object.assign({}, init || {}, {headers: headers});
        }
      }
      return originalFetch.call(this, input, init);
    };
  }

  // XMLHttpRequest (and so jQuery's $.ajax, $.post)
  var proto = XMLHttpRequest.prototype;
  var open = proto.open, send = proto.send, setRequestHeader = proto.setRequestHeader;
  proto.open = function (method, url) {
    this.__ivpCsrf = !SAFE.test(String(method)) && sameOrigin(url);
    this.__ivpCsrfSet = false;
    return open.apply(this, arguments);
  };
  proto.setRequestHeader = function (name) {
    if (String(name).toLowerCase() === HEADER.toLowerCase()) this.__ivpCsrfSet = true;
    return setRequestHeader.apply(this, arguments);
  };
  proto.send = function () {
    if (this.__ivpCsrf && !this.__ivpCsrfSet) setRequestHeader.call(this, HEADER, token());
    return send.apply(this, arguments);
  };

  // forms
  function withToken(form) {
    if (!form || String(form.getAttribute("method") || "get").toLowerCase() !== "post") return;
    if (!sameOrigin(form.action || window.location.href)) return;
    var field = form.querySelector('input[name="csrf_token"]');
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "csrf_token";
      form.insertBefore(field, form.firstChild);
    }
    if (token()) field.value = token();
  }
  document.addEventListener("submit", function (event) { withToken(event.target); }, true);
  var formProto = HTMLFormElement.prototype;
  var submit = formProto.submit;
  formProto.submit = function () {
    withToken(this);
    return submit.apply(this, arguments);
  };

  // a fresh token for a page left open
  function refresh() {
    if (!refreshUrl || !originalFetch) return;
    originalFetch.call(window, refreshUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (reply) { return reply.ok ? reply.json() : null; })
      .then(function (data) {
        if (!data || !data.csrf_token) return;
        var meta = document.querySelector('meta[name="csrf-token"]');
        if (meta) meta.setAttribute("content", data.csrf_token);
        document.querySelectorAll('form input[name="csrf_token"]').forEach(function (field) {
          field.value = data.csrf_token;
        });
      })
      .catch(function () {});
  }
  window.setInterval(refresh, 20 * 60 * 1000);
})();
