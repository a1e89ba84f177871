/**
 * The status page at the API's root: one small HTML page and its script, no framework. It takes
 * the state from the `status` event of `/events` and applies the later events to it, so it is
 * live; when the stream breaks, EventSource reconnects and the next `status` event replaces the
 * state. Every 2 s it also reads `/status` for the byte and request counters: traffic rates per
 * entry point and connector, requests by status code, and a list of recent errors (new 4xx/5xx
 * answers, connectors that went down) since the page was opened. A tunnel's ID opens its detail
 * view (its connectors with their bytes and rates). Data is put in the page with textContent only (never as HTML).
 * Buttons call the abuse controls (controls.ts) after a confirm, same-origin with a JSON body;
 * the events that follow update the tables.
 */

export const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>burrow status</title>
<link rel="icon" href="data:,">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #ddd; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; font-weight: 600; }
code { font-size: .95em; }
#conn.live { color: #17803d; } #conn.down { color: #b42318; }
.empty { color: #777; font-style: italic; }
button { font-size: .85em; margin-right: .3em; }
#action.error { color: #b42318; }
</style>
</head>
<body>
<h1>burrow</h1>
<div>stream: <span id="conn" class="down">connecting</span> · ready: <span id="ready">?</span> · <span id="time"></span></div>
<div id="action" role="status"></div>
<h2>Tunnels (<span id="tunnel-count">0</span>)</h2>
<table id="tunnels"><thead><tr><th>tunnel</th><th>service</th><th>connector</th><th>client</th><th>net</th><th>weight</th><th>since</th><th>streams</th><th>draining</th><th>names</th><th>actions</th></tr></thead><tbody></tbody></table>
<section id="detail" hidden>
<h2>Tunnel <span id="detail-id"></span> <button type="button" id="detail-close">close</button></h2>
<table id="detail-conns"><thead><tr><th>connector</th><th>client</th><th>since</th><th>streams</th><th>bytes in</th><th>bytes out</th><th>in rate</th><th>out rate</th></tr></thead><tbody></tbody></table>
</section>
<h2>Entry points</h2>
<table id="entrypoints"><thead><tr><th>entry point</th><th>open</th><th>connections</th><th>failed</th><th>bytes in</th><th>bytes out</th><th>in rate</th><th>out rate</th></tr></thead><tbody></tbody></table>
<h2>Requests by status</h2>
<table id="codes"><thead><tr><th>service</th><th>status</th><th>requests</th></tr></thead><tbody></tbody></table>
<h2>Recent errors</h2>
<table id="errors"><thead><tr><th>time</th><th>what</th></tr></thead><tbody></tbody></table>
<h2>Public names</h2>
<table id="names"><thead><tr><th>host</th><th>tunnel</th><th>holders</th><th>expires</th><th>actions</th></tr></thead><tbody></tbody></table>
<h2>Revoked tunnels</h2>
<table id="revoked"><thead><tr><th>tunnel</th><th>since</th><th>reason</th><th>actions</th></tr></thead><tbody></tbody></table>
<h2>Blocked names</h2>
<table id="blocked"><thead><tr><th>host</th><th>since</th><th>reason</th><th>actions</th></tr></thead><tbody></tbody></table>
<h2>Services</h2>
<table id="services"><thead><tr><th>name</th><th>address</th><th>listener</th><th>handler</th><th>connections</th></tr></thead><tbody></tbody></table>
<script src="ui.js"></script>
</body>
</html>
`;

export const PAGE_JS = `'use strict';
(function () {
  var base = location.pathname.replace(/\\/?$/, '/');
  var state = { services: [], tunnels: new Map(), names: new Map(), revoked: new Map(), blocked: new Map(), ready: false,
    entryPoints: [], requests: [], detail: null };
  /** The counters of the last /status read, rates computed from the two last, recent errors. */
  var prev = null;
  var rates = new Map();
  var recent = [];
  function note(text) { recent.unshift([new Date().toLocaleTimeString(), text]); if (recent.length > 20) recent.length = 20; }
  function size(n) { return n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB'; }
  function perSec(r) { return r === undefined ? '' : size(Math.max(0, Math.round(r))) + '/s'; }
  function $(id) { return document.getElementById(id); }
  function cell(tr, v) {
    var td = document.createElement('td');
    if (v instanceof Node) td.appendChild(v); else td.textContent = v == null ? '' : String(v);
    tr.appendChild(td);
  }
  /** A button that asks \`question\`, then calls the control at \`path\` (under the API) with \`method\`. */
  function button(label, question, method, path) {
    var b = document.createElement('button');
    b.type = 'button'; b.textContent = label;
    b.addEventListener('click', function () {
      if (!window.confirm(question)) return;
      b.disabled = true;
      fetch(base + path, { method: method, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'status page' }) })
        .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
        .then(function (a) { say((a.ok ? label + ': done' : label + ': ' + a.j.msg), !a.ok); })
        .catch(function (err) { say(label + ': ' + err.message, true); })
        .then(function () { b.disabled = false; });
    });
    return b;
  }
  function buttons() { var span = document.createElement('span'); for (var i = 0; i < arguments.length; i++) span.appendChild(arguments[i]); return span; }
  function say(text, error) { var a = $('action'); a.textContent = text; a.className = error ? 'error' : ''; }
  function enc(s) { return encodeURIComponent(s); }
  function fill(id, rows, cols, emptyText) {
    var body = $(id).tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      var tr = document.createElement('tr'); var td = document.createElement('td');
      td.colSpan = cols; td.className = 'empty'; td.textContent = emptyText; tr.appendChild(td); body.appendChild(tr);
      return;
    }
    rows.forEach(function (r) { var tr = document.createElement('tr'); r.forEach(function (v) { cell(tr, v); }); body.appendChild(tr); });
  }
  function when(iso) { return iso ? new Date(iso).toLocaleTimeString() : ''; }
  function tunnelLink(t) {
    var a = document.createElement('a');
    a.href = '#'; a.className = 'tunnel-link'; a.textContent = t.id;
    a.addEventListener('click', function (ev) { ev.preventDefault(); state.detail = key(t.service, t.id); render(); });
    return a;
  }
  function renderTraffic() {
    fill('entrypoints', state.entryPoints.map(function (e) {
      var r = rates.get('ep ' + e.name) || {};
      return [e.name, e.open, e.connections, e.failed, size(e.inputBytes), size(e.outputBytes), perSec(r.i), perSec(r.o)];
    }), 8, 'none');
    var codes = [];
    state.requests.forEach(function (q) { Object.keys(q.byCode).sort().forEach(function (c) { codes.push([q.service, c, q.byCode[c]]); }); });
    fill('codes', codes, 3, 'none yet');
    fill('errors', recent.slice(), 2, 'none since the page was opened');
    var t = state.detail !== null ? state.tunnels.get(state.detail) : undefined;
    $('detail').hidden = t === undefined;
    if (t === undefined) return;
    $('detail-id').textContent = t.id;
    fill('detail-conns', t.connectors.map(function (c) {
      var r = rates.get('c ' + c.id) || {};
      return [c.id, c.client, when(c.since), c.streams, size(c.bytesIn || 0), size(c.bytesOut || 0), perSec(r.i), perSec(r.o)];
    }), 8, 'no connector');
  }
  function render() {
    var rows = [];
    state.tunnels.forEach(function (t) {
      t.connectors.forEach(function (c) {
        rows.push([tunnelLink(t), t.service, c.id, c.client, c.network, c.weight, when(c.since), c.streams, c.draining ? 'yes' : 'no', (c.names || []).join(' '),
          buttons(button('disconnect', 'Disconnect connector ' + c.id + ' (' + c.client + ')? The client may reconnect.', 'POST', 'status/connectors/' + enc(c.id) + '/disconnect'),
            button('revoke', 'Revoke tunnel ' + t.id + '? Its connectors are disconnected and refused until it is restored.', 'POST', 'status/tunnels/' + enc(t.id) + '/revoke'))]);
      });
    });
    $('tunnel-count').textContent = String(state.tunnels.size);
    fill('tunnels', rows, 11, 'no tunnel connected');
    var names = [];
    state.names.forEach(function (n) {
      var acts = [button('release', 'Release ' + n.host + '? It stops routing and another tunnel may claim it.', 'POST', 'status/names/' + enc(n.host) + '/release')];
      if (!/^[0-9a-f]{16}\\./.test(n.host)) acts.push(button('block', 'Block ' + n.host + '? It is released and no tunnel gets it until unblocked.', 'POST', 'status/names/' + enc(n.host) + '/block'));
      names.push([n.host, n.tunnelId, n.holders, n.holders > 0 ? '' : when(n.expiresAt), buttons.apply(null, acts)]);
    });
    fill('names', names, 5, 'none');
    var revoked = [];
    state.revoked.forEach(function (r) { revoked.push([r.tunnelId, when(r.since), r.reason, button('restore', 'Restore tunnel ' + r.tunnelId + '?', 'DELETE', 'status/tunnels/' + enc(r.tunnelId) + '/revoke')]); });
    fill('revoked', revoked, 4, 'none');
    var blocked = [];
    state.blocked.forEach(function (b) { blocked.push([b.host, when(b.since), b.reason, button('unblock', 'Unblock ' + b.host + '?', 'DELETE', 'status/names/' + enc(b.host) + '/block')]); });
    fill('blocked', blocked, 4, 'none');
    fill('services', state.services.map(function (s) { return [s.name, s.addr, s.listener, s.handler, s.connections]; }), 5, 'none');
    renderTraffic();
    $('ready').textContent = state.ready ? 'yes' : 'no';
    $('time').textContent = 'updated ' + new Date().toLocaleTimeString();
  }
  function key(service, id) { return service + ' ' + id; }
  function load(s) {
    state.services = s.services; state.ready = s.ready;
    state.entryPoints = s.entryPoints || []; state.requests = s.requests || [];
    state.tunnels = new Map(); state.names = new Map();
    s.tunnels.forEach(function (t) { state.tunnels.set(key(t.service, t.id), { service: t.service, id: t.id, connectors: t.connectors }); });
    s.names.forEach(function (n) { state.names.set(key(n.service, n.name), n); });
    state.revoked = new Map(); state.blocked = new Map();
    (s.revoked || []).forEach(function (r) { state.revoked.set(r.tunnelId, r); });
    (s.blockedNames || []).forEach(function (b) { state.blocked.set(key(b.service, b.name), b); });
  }
  var es = new EventSource(base + 'events');
  es.onopen = function () { $('conn').textContent = 'live'; $('conn').className = 'live'; };
  es.onerror = function () { $('conn').textContent = 'reconnecting'; $('conn').className = 'down'; };
  es.addEventListener('status', function (e) { load(JSON.parse(e.data)); render(); });
  es.addEventListener('connector-up', function (e) {
    var c = JSON.parse(e.data); var k = key(c.service, c.tunnelId);
    var t = state.tunnels.get(k) || { service: c.service, id: c.tunnelId, connectors: [] };
    t.connectors = t.connectors.filter(function (x) { return x.id !== c.id; }).concat([c]);
    state.tunnels.set(k, t); render();
  });
  es.addEventListener('connector-down', function (e) {
    var c = JSON.parse(e.data); var k = key(c.service, c.tunnelId); var t = state.tunnels.get(k);
    note('connector ' + c.id + ' of tunnel ' + c.tunnelId + ' went down');
    if (t) { t.connectors = t.connectors.filter(function (x) { return x.id !== c.id; }); if (t.connectors.length === 0) state.tunnels.delete(k); }
    render();
  });
  es.addEventListener('name-claim', function (e) {
    var n = JSON.parse(e.data); var k = key(n.service, n.name); var cur = state.names.get(k);
    state.names.set(k, { host: n.host, tunnelId: n.tunnelId, holders: (cur && cur.tunnelId === n.tunnelId ? cur.holders : 0) + 1 }); render();
  });
  es.addEventListener('name-release', function (e) {
    var n = JSON.parse(e.data); var cur = state.names.get(key(n.service, n.name));
    if (cur) { cur.holders = Math.max(0, cur.holders - 1); } render();
  });
  es.addEventListener('name-free', function (e) { var n = JSON.parse(e.data); state.names.delete(key(n.service, n.name)); render(); });
  es.addEventListener('tunnel-revoke', function (e) {
    var r = JSON.parse(e.data);
    if (!state.revoked.has(r.tunnelId)) state.revoked.set(r.tunnelId, { tunnelId: r.tunnelId, since: new Date().toISOString(), reason: r.reason });
    render();
  });
  es.addEventListener('tunnel-restore', function (e) { state.revoked.delete(JSON.parse(e.data).tunnelId); render(); });
  es.addEventListener('name-block', function (e) {
    var b = JSON.parse(e.data); var k = key(b.service, b.name);
    state.names.delete(k);
    if (!state.blocked.has(k)) state.blocked.set(k, { service: b.service, name: b.name, host: b.host, since: new Date().toISOString(), reason: b.reason });
    render();
  });
  es.addEventListener('name-unblock', function (e) { var b = JSON.parse(e.data); state.blocked.delete(key(b.service, b.name)); render(); });
  render();
  /** Counters from /status every 2 s: rates, and new error answers as recent errors. */
  function poll() {
    fetch(base + 'status').then(function (r) { return r.ok ? r.json() : null; }).then(function (s) {
      if (!s) return;
      var cur = { at: Date.now(), bytes: new Map(), codes: new Map() };
      (s.entryPoints || []).forEach(function (e) { cur.bytes.set('ep ' + e.name, [e.inputBytes, e.outputBytes]); });
      s.tunnels.forEach(function (t) { t.connectors.forEach(function (c) { cur.bytes.set('c ' + c.id, [c.bytesIn || 0, c.bytesOut || 0]); }); });
      (s.requests || []).forEach(function (q) { cur.codes.set(q.service, q.byCode); });
      if (prev !== null) {
        var dt = Math.max(0.001, (cur.at - prev.at) / 1000);
        rates = new Map();
        cur.bytes.forEach(function (v, k) { var p = prev.bytes.get(k); if (p) rates.set(k, { i: (v[0] - p[0]) / dt, o: (v[1] - p[1]) / dt }); });
        cur.codes.forEach(function (byCode, svc) {
          var was = prev.codes.get(svc) || {};
          Object.keys(byCode).forEach(function (c) {
            var d = byCode[c] - (was[c] || 0);
            if (d > 0 && /^[45]/.test(c)) note('HTTP ' + c + ' x' + d + ' at the entry points of ' + svc);
          });
        });
      }
      prev = cur;
      load(s); render();
    }).catch(function () {});
  }
  $('detail-close').addEventListener('click', function () { state.detail = null; render(); });
  poll();
  setInterval(poll, 2000);
})();
`;
