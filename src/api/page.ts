/**
 * The status page at the API's root: one small HTML page and its script, no framework. It takes
 * the state from the `status` event of `/events` and applies the later events to it, so it is
 * live without polling; when the stream breaks, EventSource reconnects and the next `status`
 * event replaces the state. Data is put in the page with textContent only (never as HTML).
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
</style>
</head>
<body>
<h1>burrow</h1>
<div>stream: <span id="conn" class="down">connecting</span> · ready: <span id="ready">?</span> · <span id="time"></span></div>
<h2>Tunnels (<span id="tunnel-count">0</span>)</h2>
<table id="tunnels"><thead><tr><th>tunnel</th><th>service</th><th>connector</th><th>client</th><th>net</th><th>weight</th><th>since</th><th>streams</th><th>draining</th><th>names</th></tr></thead><tbody></tbody></table>
<h2>Public names</h2>
<table id="names"><thead><tr><th>host</th><th>tunnel</th><th>holders</th><th>expires</th></tr></thead><tbody></tbody></table>
<h2>Services</h2>
<table id="services"><thead><tr><th>name</th><th>address</th><th>listener</th><th>handler</th><th>connections</th></tr></thead><tbody></tbody></table>
<script src="ui.js"></script>
</body>
</html>
`;

export const PAGE_JS = `'use strict';
(function () {
  var base = location.pathname.replace(/\\/?$/, '/');
  var state = { services: [], tunnels: new Map(), names: new Map(), ready: false };
  function $(id) { return document.getElementById(id); }
  function cell(tr, text) { var td = document.createElement('td'); td.textContent = text == null ? '' : String(text); tr.appendChild(td); }
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
  function render() {
    var rows = [];
    state.tunnels.forEach(function (t) {
      t.connectors.forEach(function (c) {
        rows.push([t.id, t.service, c.id, c.client, c.network, c.weight, when(c.since), c.streams, c.draining ? 'yes' : 'no', (c.names || []).join(' ')]);
      });
    });
    $('tunnel-count').textContent = String(state.tunnels.size);
    fill('tunnels', rows, 10, 'no tunnel connected');
    var names = [];
    state.names.forEach(function (n) { names.push([n.host, n.tunnelId, n.holders, n.holders > 0 ? '' : when(n.expiresAt)]); });
    fill('names', names, 4, 'none');
    fill('services', state.services.map(function (s) { return [s.name, s.addr, s.listener, s.handler, s.connections]; }), 5, 'none');
    $('ready').textContent = state.ready ? 'yes' : 'no';
    $('time').textContent = 'updated ' + new Date().toLocaleTimeString();
  }
  function key(service, id) { return service + ' ' + id; }
  function load(s) {
    state.services = s.services; state.ready = s.ready;
    state.tunnels = new Map(); state.names = new Map();
    s.tunnels.forEach(function (t) { state.tunnels.set(key(t.service, t.id), { service: t.service, id: t.id, connectors: t.connectors }); });
    s.names.forEach(function (n) { state.names.set(key(n.service, n.name), n); });
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
  render();
})();
`;
