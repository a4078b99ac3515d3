// The dashboard's page, script and style. See dashboard.h.
//
// Constraints the assets keep (tests/net/dashboard_test.cc and
// tests/browser/dashboard_browser_test.mjs check them):
//   - no URL with a scheme or a network path ("//host"): everything is
//     fetched from the proxy itself (the CSP would block anything else);
//   - no inline script, style attribute or event handler attribute (the CSP
//     allows only 'self'); the script sets styles through the CSSOM, which
//     the CSP permits;
//   - data from /stats reaches the DOM through textContent and setAttribute
//     only, never innerHTML: model ids are chosen by clients;
//   - stable ids and data attributes for tests: #hit-rate (data-value: the
//     raw rate), #requests, #hits, #misses, #bypasses, #updated-at
//     (data-polls: successful polls so far), #hit-rate-chart (the SVG) with
//     #hit-rate-line (data-points), a <tr data-model="..."> per model whose
//     cells carry data-col, #token-form.
//   - plain ES2017 in one classic script: no modules, no build step.

#include "dashboard.h"

#include <array>

namespace llmcache::net::proxy {
namespace {

constexpr std::string_view kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

constexpr std::string_view kHeaders =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri "
    "'none'; form-action 'none'; frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cache-Control: no-store\r\n"
    "X-Frame-Options: DENY\r\n"
    "Cross-Origin-Resource-Policy: same-origin\r\n"
    "Cross-Origin-Opener-Policy: same-origin\r\n";

constexpr std::string_view kHtml = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>llmcache dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body>
<header class="top">
  <h1>llmcache</h1>
  <p class="meta"><span id="status" role="status">Loading&hellip;</span>
    <span id="updated-at" data-polls="0"></span></p>
</header>
<form id="token-form" hidden autocomplete="off">
  <p id="token-message">This proxy's statistics need its admin token.</p>
  <label for="token-input">Admin token</label>
  <input id="token-input" name="token" type="password" autocomplete="off" spellcheck="false" required>
  <button id="token-submit" type="submit">Show statistics</button>
  <p class="sub">Kept in this tab only (sessionStorage) and sent as
    <code>Authorization: Bearer</code> to <code>/stats</code>.</p>
</form>
<main id="content">
<section class="cards" aria-label="Requests">
  <div class="card accent">
    <h2>Hit rate</h2>
    <p class="big" id="hit-rate" data-value="">&mdash;</p>
    <p class="sub"><span id="cache-hits">&mdash;</span> hits /
      <span id="cache-misses">&mdash;</span> misses in the store</p>
  </div>
  <div class="card">
    <h2>Requests</h2>
    <p class="big" id="requests" data-value="">&mdash;</p>
    <p class="sub">in flight <span id="in-flight">&mdash;</span>,
      connections <span id="open-connections">&mdash;</span>,
      upstream errors <span id="upstream-errors">&mdash;</span></p>
  </div>
  <div class="card">
    <h2>Hits</h2>
    <p class="big" id="hits" data-value="">&mdash;</p>
  </div>
  <div class="card">
    <h2>Misses</h2>
    <p class="big" id="misses" data-value="">&mdash;</p>
  </div>
  <div class="card">
    <h2>Bypasses</h2>
    <p class="big" id="bypasses" data-value="">&mdash;</p>
    <ul class="reasons" id="bypass-reasons"></ul>
  </div>
</section>

<section class="panel">
  <h2>Hit rate over time</h2>
  <div class="chart-wrap">
    <svg id="hit-rate-chart" viewBox="0 0 600 200" role="img"
      aria-label="Hit rate since this page opened (last 10 minutes)"></svg>
  </div>
  <p class="sub">The store's hit rate at each update since this page
    opened (the last 10 minutes).</p>
</section>

<section class="cards" aria-label="Savings">
  <div class="card">
    <h2>Response cache: tokens saved</h2>
    <p class="big" id="tokens-saved" data-value="">&mdash;</p>
    <p class="sub">since the proxy started: <span id="tokens-saved-run">&mdash;</span></p>
  </div>
  <div class="card">
    <h2>Response cache: dollars saved</h2>
    <p class="big" id="cost-saved" data-value="">&mdash;</p>
    <p class="sub">since the proxy started: <span id="cost-saved-run">&mdash;</span></p>
  </div>
  <div class="card">
    <h2>Provider prompt cache: saved</h2>
    <p class="big" id="prompt-cache-saved" data-value="">&mdash;</p>
    <p class="sub">read <span id="prompt-cache-read">&mdash;</span> tokens,
      written <span id="prompt-cache-write">&mdash;</span>, write premium
      <span id="prompt-cache-premium">&mdash;</span></p>
  </div>
</section>

<section class="panels">
  <div class="panel">
    <h2>Store</h2>
    <dl id="store" class="kv" data-degraded=""></dl>
  </div>
  <div class="panel" id="shared-panel" hidden>
    <h2>Shared tier</h2>
    <dl id="shared" class="kv"></dl>
  </div>
</section>

<section class="panel">
  <h2>Models</h2>
  <div class="table-wrap">
    <table id="models">
      <thead>
        <tr>
          <th scope="col">Model</th>
          <th scope="col" class="n">Entries</th>
          <th scope="col" class="n">Bytes</th>
          <th scope="col" class="n">Hits</th>
          <th scope="col" class="n">Tokens saved</th>
          <th scope="col" class="n">$ saved</th>
          <th scope="col" class="n">Prompt cache read</th>
          <th scope="col" class="n">Prompt cache $ saved</th>
          <th scope="col">Last resolved model</th>
          <th scope="col" class="n">Drift events</th>
        </tr>
      </thead>
      <tbody id="model-rows"></tbody>
    </table>
  </div>
  <p class="sub">Model drifts: <span id="model-drifts">&mdash;</span>;
    flush on drift: <span id="flush-on-drift">&mdash;</span></p>
</section>
</main>
</body>
</html>
)HTML";

constexpr std::string_view kCss = R"CSS(:root {
  --bg: #f6f7f9; --fg: #1d2330; --muted: #5d6677; --card: #fff;
  --line: #dde1e8; --accent: #1f6feb; --bad: #c62828; --good: #2e7d32;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #12151b; --fg: #e5e8ee; --muted: #9aa3b2; --card: #1b2029;
          --line: #2c3340; --accent: #58a6ff; --bad: #ef5350; --good: #66bb6a; }
}
[hidden] { display: none !important; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0; padding: 12px; background: var(--bg); color: var(--fg);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  overflow-wrap: anywhere;
}
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 13px; font-weight: 600; margin: 0 0 6px; color: var(--muted);
     text-transform: uppercase; letter-spacing: .03em; }
.top { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px;
       margin-bottom: 12px; }
.meta { margin: 0; color: var(--muted); }
#status.error { color: var(--bad); }
.cards { display: grid; gap: 10px; margin-bottom: 10px;
         grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); }
.card, .panel { background: var(--card); border: 1px solid var(--line);
                border-radius: 8px; padding: 10px 12px; min-width: 0; }
.card.accent { border-color: var(--accent); }
.panel { margin-bottom: 10px; }
.panels { display: grid; gap: 10px; margin-bottom: 10px;
          grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); }
.panels .panel { margin-bottom: 0; }
.big { font-size: 26px; font-weight: 600; margin: 0;
       font-variant-numeric: tabular-nums; }
.sub { margin: 4px 0 0; color: var(--muted); font-size: 12px; }
.reasons { list-style: none; margin: 4px 0 0; padding: 0; font-size: 12px;
           color: var(--muted); }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px;
      margin: 0; }
.kv dt { color: var(--muted); }
.kv dd { margin: 0; font-variant-numeric: tabular-nums; min-width: 0; }
.kv dd.bad { color: var(--bad); font-weight: 600; }
.kv dd.good { color: var(--good); }
.chart-wrap { width: 100%; }
#hit-rate-chart { display: block; width: 100%; height: auto; max-height: 260px; }
#hit-rate-chart .axis { stroke: var(--muted); stroke-width: 1; }
#hit-rate-chart .grid { stroke: var(--line); stroke-width: 1; }
#hit-rate-chart .label { fill: var(--muted); font-size: 11px; }
#hit-rate-chart .line { fill: none; stroke: var(--accent); stroke-width: 2; }
#hit-rate-chart .dot { fill: var(--accent); }
.table-wrap { width: 100%; overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
         white-space: nowrap; }
th.n, td.n { text-align: right; }
td.model { max-width: 28em; overflow: hidden; text-overflow: ellipsis; }
#token-form { background: var(--card); border: 1px solid var(--accent);
              border-radius: 8px; padding: 12px; margin-bottom: 12px;
              display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
#token-form p { flex-basis: 100%; margin: 0; }
#token-form input { flex: 1 1 12em; min-width: 0; padding: 6px; font: inherit; }
#token-form button { padding: 6px 12px; font: inherit; }
)CSS";

constexpr std::string_view kJs = R"JS('use strict';
(function () {
  var params = new URLSearchParams(window.location.search);
  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }
  // ?interval=MS polls faster or slower (tests); 2 s by default.
  var POLL_MS = clamp(parseInt(params.get('interval') || '2000', 10) || 2000,
                      250, 60000);
  var WINDOW_MS = 10 * 60 * 1000;
  var TOKEN_KEY = 'llmcache.admin-token';
  var DASH = '\u2014';
  // The SVG namespace, read from the page's own <svg> (no URL in here).
  var SVG_NS = document.getElementById('hit-rate-chart').namespaceURI;

  var samples = [];  // {t: ms, rate: 0..1}
  var polls = 0;
  var timer = null;
  var waitingForToken = false;

  function $(id) { return document.getElementById(id); }
  function isObj(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }
  function obj(v) { return isObj(v) ? v : {}; }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function num(v) { return typeof v === 'number' && isFinite(v) ? v : null; }

  function fmtInt(v) {
    v = num(v);
    return v === null ? DASH : Math.round(v).toLocaleString('en-US');
  }
  function fmtPct(r) {
    r = num(r);
    return r === null ? DASH : (r * 100).toFixed(1) + '%';
  }
  function fmtUsd(v) {
    v = num(v);
    if (v === null) return DASH;
    var a = Math.abs(v);
    return (v < 0 ? '-$' : '$') + (a >= 100 ? a.toFixed(0) : a >= 1 ? a.toFixed(2) : a.toFixed(4));
  }
  function fmtBytes(v) {
    v = num(v);
    if (v === null) return DASH;
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
  }
  function fmtBool(v) { return typeof v === 'boolean' ? (v ? 'yes' : 'no') : DASH; }
  function fmtText(v) { return typeof v === 'string' && v !== '' ? v : DASH; }
  function fmtTime(ms) {
    var d = new Date(ms);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  function setText(id, text) {
    var e = $(id);
    if (e) e.textContent = text;
    return e;
  }
  // A figure and its raw value (data-value, "" when absent) for tests.
  function setFigure(id, value, format) {
    var e = setText(id, format(value));
    if (e) e.setAttribute('data-value', num(value) === null ? '' : String(value));
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setStatus(text, error) {
    var s = setText('status', text);
    if (s) s.className = error ? 'error' : '';
  }

  // ------------------------------------------------------------ rendering

  function renderKv(dl, pairs) {
    clear(dl);
    pairs.forEach(function (p) {
      var dt = el('dt', p[0]);
      var dd = el('dd', p[1], p[2] || '');
      dd.setAttribute('data-key', p[3] || p[0]);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
  }

  function renderReasons(reasons) {
    var ul = $('bypass-reasons');
    clear(ul);
    var names = Object.keys(obj(reasons)).filter(function (k) { return num(reasons[k]) > 0; });
    names.sort(function (a, b) { return reasons[b] - reasons[a] || (a < b ? -1 : 1); });
    names.forEach(function (k) {
      var li = el('li', k + ': ' + fmtInt(reasons[k]));
      li.setAttribute('data-reason', k);
      ul.appendChild(li);
    });
    if (names.length === 0) ul.appendChild(el('li', 'none'));
  }

  function renderStore(store, cache) {
    var dl = $('store');
    var degraded = store.degraded === true;
    dl.setAttribute('data-degraded', typeof store.degraded === 'boolean' ? String(degraded) : '');
    var pairs = [
      ['Status', typeof store.degraded === 'boolean' ? (degraded ? 'degraded' : 'ok') : DASH,
        degraded ? 'bad' : 'good', 'status'],
    ];
    if (degraded) pairs.push(['Error', fmtText(store.error), 'bad', 'error']);
    pairs.push(['Entries', fmtInt(cache.entries), '', 'entries']);
    pairs.push(['Size', fmtBytes(cache.bytes), '', 'bytes']);
    pairs.push(['On disk', fmtBytes(cache.disk_bytes), '', 'disk_bytes']);
    pairs.push(['Memory tier', fmtInt(cache.memory_tier_entries) + ' entries, ' +
      fmtBytes(cache.memory_tier_bytes), '', 'memory_tier']);
    pairs.push(['Write errors', fmtInt(store.write_errors), num(store.write_errors) > 0 ? 'bad' : '', 'write_errors']);
    pairs.push(['Degradations', fmtInt(store.degradations), '', 'degradations']);
    pairs.push(['Recoveries', fmtInt(store.recoveries), '', 'recoveries']);
    pairs.push(['Evictions', fmtInt(cache.evictions), '', 'evictions']);
    renderKv(dl, pairs);
  }

  function renderShared(shared) {
    var panel = $('shared-panel');
    if (!isObj(shared)) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    var p = obj(shared.pipeline);
    var pairs = [
      ['Backend', fmtText(shared.backend), '', 'backend'],
      ['URL', fmtText(shared.url), '', 'url'],
      ['Available', fmtBool(shared.available), shared.available === false ? 'bad' : 'good', 'available'],
      ['Cluster', shared.cluster === true ? fmtInt(shared.nodes) + ' nodes' : fmtBool(shared.cluster), '', 'cluster'],
      ['Hits', fmtInt(shared.hits), '', 'hits'],
      ['Misses', fmtInt(shared.misses), '', 'misses'],
      ['Stale', fmtInt(shared.stale), '', 'stale'],
      ['Writes', fmtInt(shared.puts) + ' (' + fmtInt(shared.put_errors) + ' failed)', '', 'puts'],
      ['Errors', fmtInt(shared.errors), num(shared.errors) > 0 ? 'bad' : '', 'errors'],
      ['Timeouts', fmtInt(shared.timeouts), num(shared.timeouts) > 0 ? 'bad' : '', 'timeouts'],
      ['Answered from it', fmtInt(p.hits), '', 'pipeline_hits'],
    ];
    if (typeof shared.last_error === 'string' && shared.last_error !== '') {
      pairs.push(['Last error', shared.last_error, 'bad', 'last_error']);
    }
    renderKv($('shared'), pairs);
  }

  var COLUMNS = [
    ['entries', true], ['bytes', true], ['hits', true], ['tokens_saved', true],
    ['cost_saved_usd', true], ['prompt_cache_read_tokens', true],
    ['prompt_cache_saved_usd', true], ['resolved_model', false], ['drift_events', true],
  ];

  function renderModels(cache, client) {
    var rows = new Map();
    function row(id) {
      if (!rows.has(id)) rows.set(id, { model: id, cache: null, pc: null, drift: null });
      return rows.get(id);
    }
    arr(cache.models).forEach(function (m) {
      if (isObj(m) && typeof m.model === 'string') row(m.model).cache = m;
    });
    var pc = isObj(client.prompt_cache) ? client.prompt_cache : null;
    arr(pc && pc.models).forEach(function (m) {
      if (isObj(m) && typeof m.model === 'string') row(m.model).pc = m;
    });
    var drift = isObj(client.drift) ? client.drift : null;
    arr(drift && drift.models).forEach(function (m) {
      if (isObj(m) && typeof m.model === 'string') row(m.model).drift = m;
    });
    var list = Array.from(rows.values());
    function hits(r) { return r.cache ? num(r.cache.hits) || 0 : 0; }
    list.sort(function (a, b) {
      return hits(b) - hits(a) || (a.model < b.model ? -1 : a.model > b.model ? 1 : 0);
    });
    var body = $('model-rows');
    clear(body);
    list.forEach(function (r) {
      var c = r.cache || {};
      var p = r.pc || {};
      var d = r.drift || {};
      // Persisted per-model counters first (they survive restarts).
      var pcRead = num(c.provider_cache_read_tokens) !== null ? c.provider_cache_read_tokens
                                                              : p.read_tokens;
      var pcSaved = num(c.provider_cache_saved_usd) !== null ? c.provider_cache_saved_usd
                                                            : p.saved_usd;
      var driftEvents = num(c.drift_events) !== null ? c.drift_events : d.drift_events;
      var resolved = typeof d.resolved_model === 'string' ? d.resolved_model : c.last_resolved_model;
      var values = {
        entries: fmtInt(c.entries), bytes: fmtBytes(c.bytes), hits: fmtInt(c.hits),
        tokens_saved: fmtInt(c.tokens_saved), cost_saved_usd: fmtUsd(c.cost_saved_usd),
        prompt_cache_read_tokens: fmtInt(pcRead),
        prompt_cache_saved_usd: fmtUsd(pcSaved),
        resolved_model: fmtText(resolved), drift_events: fmtInt(driftEvents),
      };
      var raw = {
        entries: c.entries, bytes: c.bytes, hits: c.hits, tokens_saved: c.tokens_saved,
        cost_saved_usd: c.cost_saved_usd, prompt_cache_read_tokens: pcRead,
        prompt_cache_saved_usd: pcSaved, drift_events: driftEvents,
      };
      var tr = document.createElement('tr');
      tr.setAttribute('data-model', r.model);
      var name = el('td', r.model, 'model');
      name.setAttribute('data-col', 'model');
      name.title = r.model;
      tr.appendChild(name);
      COLUMNS.forEach(function (col) {
        var td = el('td', values[col[0]], col[1] ? 'n' : '');
        td.setAttribute('data-col', col[0]);
        if (col[1]) td.setAttribute('data-value', num(raw[col[0]]) === null ? '' : String(raw[col[0]]));
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    if (list.length === 0) {
      var tr = document.createElement('tr');
      var td = el('td', 'No cached model yet.');
      td.colSpan = COLUMNS.length + 1;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    setText('model-drifts', fmtInt(client.model_drifts));
    setText('flush-on-drift', drift ? fmtBool(drift.flush_on_drift) : DASH);
  }

  function drawChart() {
    var chart = $('hit-rate-chart');
    clear(chart);
    var W = 600, H = 200, L = 44, R = 12, T = 10, B = 26;
    var pw = W - L - R, ph = H - T - B;
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      var y = T + ph * (1 - v);
      chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y, y2: y, 'class': v === 0 ? 'axis' : 'grid' }));
      chart.appendChild(svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', 'class': 'label' },
        Math.round(v * 100) + '%'));
    });
    chart.appendChild(svg('line', { x1: L, x2: L, y1: T, y2: T + ph, 'class': 'axis' }));
    var path = svg('path', { id: 'hit-rate-line', 'class': 'line', d: '', 'data-points': samples.length });
    chart.appendChild(path);
    if (samples.length === 0) {
      chart.appendChild(svg('text', { x: L + pw / 2, y: T + ph / 2, 'text-anchor': 'middle', 'class': 'label' },
        'waiting for data'));
      return;
    }
    var last = samples[samples.length - 1].t;
    // At least a minute wide, at most the window.
    var span = clamp(last - samples[0].t, 60000, WINDOW_MS);
    var left = last - span;
    function x(t) { return L + pw * (t - left) / span; }
    function y(r) { return T + ph * (1 - clamp(r, 0, 1)); }
    var d = samples.map(function (s, i) {
      return (i === 0 ? 'M' : 'L') + x(s.t).toFixed(1) + ' ' + y(s.rate).toFixed(1);
    }).join(' ');
    path.setAttribute('d', d);
    var end = samples[samples.length - 1];
    chart.appendChild(svg('circle', { id: 'hit-rate-last', 'class': 'dot', cx: x(end.t).toFixed(1), cy: y(end.rate).toFixed(1), r: 3 }));
    [[left, 'start'], [left + span / 2, 'middle'], [last, 'end']].forEach(function (tick) {
      chart.appendChild(svg('text', { x: x(tick[0]).toFixed(1), y: H - 8, 'text-anchor': tick[1], 'class': 'label' },
        fmtTime(tick[0])));
    });
  }

  function render(s) {
    var cache = obj(s.cache), proxy = obj(s.proxy), client = obj(s.client);
    var rate = num(cache.hit_rate);
    setFigure('hit-rate', rate, fmtPct);
    setText('cache-hits', fmtInt(cache.hits));
    setText('cache-misses', fmtInt(cache.misses));
    setFigure('requests', proxy.requests, fmtInt);
    setFigure('hits', proxy.hits, fmtInt);
    setFigure('misses', proxy.misses, fmtInt);
    setFigure('bypasses', proxy.bypasses, fmtInt);
    setText('in-flight', fmtInt(proxy.in_flight));
    setText('open-connections', fmtInt(proxy.open_connections));
    setText('upstream-errors', fmtInt(proxy.upstream_errors));
    renderReasons(obj(proxy.bypass_reasons));

    setFigure('tokens-saved', cache.tokens_saved, fmtInt);
    setText('tokens-saved-run', fmtInt(proxy.tokens_saved));
    setFigure('cost-saved', cache.cost_saved_usd, fmtUsd);
    setText('cost-saved-run', fmtUsd(proxy.cost_saved_usd));
    // The database's per-model counters (persisted, so they survive a
    // restart) when it has them; else this process's client.prompt_cache;
    // else the flat fields of older servers.
    var pc = isObj(client.prompt_cache) ? client.prompt_cache : null;
    var stored = { read: null, write: null, saved: null, premium: null };
    arr(cache.models).forEach(function (m) {
      if (!isObj(m)) return;
      [['read', 'provider_cache_read_tokens'], ['write', 'provider_cache_write_tokens'],
       ['saved', 'provider_cache_saved_usd'], ['premium', 'provider_cache_write_premium_usd']]
        .forEach(function (f) {
          var v = num(m[f[1]]);
          if (v !== null) stored[f[0]] = (stored[f[0]] || 0) + v;
        });
    });
    function either(a, b) { return a !== null ? a : b; }
    setFigure('prompt-cache-saved',
              either(stored.saved, pc ? pc.saved_usd : client.prompt_cache_savings_usd), fmtUsd);
    setText('prompt-cache-read',
            fmtInt(either(stored.read, pc ? pc.read_tokens : client.prompt_cache_read_tokens)));
    setText('prompt-cache-write',
            fmtInt(either(stored.write, pc ? pc.write_tokens : client.prompt_cache_write_tokens)));
    setText('prompt-cache-premium', fmtUsd(either(stored.premium, pc ? pc.write_premium_usd : null)));

    renderStore(obj(s.store), cache);
    renderShared(s.shared);
    renderModels(cache, client);

    var now = Date.now();
    if (rate !== null) samples.push({ t: now, rate: rate });
    while (samples.length > 0 && samples[0].t < now - WINDOW_MS) samples.shift();
    drawChart();
  }

  // ------------------------------------------------------------- polling

  function storedToken() {
    try { return window.sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function storeToken(t) {
    try {
      if (t) window.sessionStorage.setItem(TOKEN_KEY, t);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lives for this poll only */ }
  }
  var memoryToken = '';

  function showTokenForm(message) {
    waitingForToken = true;
    setText('token-message', message);
    $('token-form').hidden = false;
    setStatus('Needs a token', true);
    var input = $('token-input');
    if (document.activeElement !== input) input.focus();
  }

  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
  }

  function poll() {
    timer = null;
    var token = storedToken() || memoryToken;
    var headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    var request;
    try {
      request = fetch('/stats', { headers: headers, cache: 'no-store', credentials: 'omit', redirect: 'error' });
    } catch (e) {
      request = Promise.reject(e);
    }
    request.then(function (res) {
      if (res.status === 401 || res.status === 403) {
        return res.json().catch(function () { return {}; }).then(function (j) {
          var why = isObj(j) && isObj(j.error) && typeof j.error.message === 'string' ? j.error.message : '';
          storeToken('');
          memoryToken = '';
          showTokenForm((token ? 'That token was refused. ' : '') +
            (why || 'This proxy\'s statistics need its admin token (or, on loopback, its access token).'));
        });
      }
      if (!res.ok) throw new Error('/stats answered ' + res.status);
      return res.json().then(function (s) {
        if (!isObj(s)) throw new Error('/stats is not a JSON object');
        waitingForToken = false;
        $('token-form').hidden = true;
        render(s);
        polls += 1;
        var u = setText('updated-at', 'updated ' + fmtTime(Date.now()));
        u.setAttribute('data-polls', String(polls));
        setStatus('Live, every ' + (POLL_MS / 1000) + ' s', false);
        schedule();
      });
    }).catch(function (e) {
      setStatus('Cannot read /stats: ' + (e && e.message ? e.message : String(e)), true);
      if (!waitingForToken) schedule();
    });
  }

  function start() {
    drawChart();
    $('token-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var t = $('token-input').value.trim();
      if (!t) return;
      $('token-input').value = '';
      memoryToken = t;
      storeToken(t);
      waitingForToken = false;
      setStatus('Loading\u2026', false);
      if (timer !== null) clearTimeout(timer);
      poll();
    });
    poll();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
)JS";

constexpr std::array<DashboardAsset, 4> kAssets = {{
    {"/dashboard", "text/html; charset=utf-8", kHtml},
    {"/dashboard/", "text/html; charset=utf-8", kHtml},
    {"/dashboard.js", "text/javascript; charset=utf-8", kJs},
    {"/dashboard.css", "text/css; charset=utf-8", kCss},
}};

}  // namespace

const DashboardAsset* FindDashboardAsset(std::string_view path) {
  for (const DashboardAsset& a : kAssets) {
    if (a.path == path) return &a;
  }
  return nullptr;
}

std::string_view DashboardHeaders() { return kHeaders; }

std::string_view DashboardCsp() { return kCsp; }

}  // namespace llmcache::net::proxy
