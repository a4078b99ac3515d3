// GET /dashboard of `llmcache serve` in a real browser: Debian's headless
// Chromium driven by playwright-core.
//
//   node tests/browser/dashboard_browser_test.mjs path/to/llmcache
//
// Starts `llmcache fake-openrouter` and `llmcache serve` in front of it on
// free loopback ports (nothing leaves the machine), sends misses and hits on
// two models (one whose id is HTML), then loads the dashboard and checks:
//   - the first update renders: one row per model with its entries and hits
//     as /stats has them, the hit rate as /stats's cache.hit_rate (formatted
//     as the page formats it), a drawn chart;
//   - the hostile model id shows as text and injected nothing (no <img>, no
//     dialog);
//   - no console error, no page error, no failed request, and no request to
//     anything but the proxy;
//   - after more traffic the next polls show more hits, the new hit rate and
//     a new chart point;
//   - at 375x700 the page does not overflow horizontally (the model table
//     scrolls inside its own box);
// then restarts the proxy with its operator views closed
// (--open-operator-views=false --admin-token T) and checks that the page
// asks for the token, refuses a wrong one, shows the data once the right one
// is typed, keeps it in sessionStorage only and never in the URL.
// Exit code 0 when every check passes, 1 otherwise (with the reason and the
// children's output). The children and the browser are stopped in every case.
// Needs: apt-get install chromium; npm ci --prefix tests/browser

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  TestFailure,
  check,
  checkCount,
  fail,
  freePort,
  healthy,
  killChildren,
  reportChildren,
  startChild,
  stopChild,
  tcpConnects,
  waitReady,
} from '../js/harness.mjs';

const OVERALL_TIMEOUT_MS = 80_000;
const UI_TIMEOUT_MS = 10_000;
const POLL_MS = 300; // the page's ?interval=; 2 s by default
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const API_KEY = 'sk-test-local'; // accepted by the fake; never written anywhere
const ADMIN_TOKEN = 'dash-admin-token-3f9c';
const MODEL = 'openai/gpt-4o-mini';
const HOSTILE = '<img src=x onerror=alert(1)>';
const SONNET = 'anthropic/claude-sonnet-4.5';

const here = path.dirname(fileURLToPath(import.meta.url));
let browser = null;
let tempDir = '';

function killChildrenNow() {
  killChildren();
  if (tempDir) {
    rmSync(tempDir, { recursive: true, force: true });
    tempDir = '';
  }
}

async function startServe(binary, fakePort, name, extraArgs) {
  const port = await freePort();
  const serve = startChild(name, binary, [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    '--db', path.join(tempDir, name),
    '--upstream', `http://127.0.0.1:${fakePort}/api/v1`,
    '--threads', '1',
    '--log-level', 'warn',
    ...extraArgs,
  ]);
  await waitReady(serve, () => healthy(port));
  return { serve, port };
}

// One chat completion; returns its X-Cache.
async function complete(port, model, topic) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({
      model,
      temperature: 0,
      messages: [{ role: 'user', content: `In one sentence: what is ${topic}?` }],
    }),
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  if (res.status !== 200) fail(`completion for ${model} answered ${res.status}`);
  return res.headers.get('x-cache');
}

async function stats(port, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(`http://127.0.0.1:${port}/stats`, { headers, signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) fail(`/stats answered ${res.status}`);
  return res.json();
}

// The page's own formatting of a rate (fmtPct in dashboard.js).
function pct(rate) {
  return `${(rate * 100).toFixed(1)}%`;
}

async function polls(page) {
  return page.evaluate(() => Number(document.getElementById('updated-at').getAttribute('data-polls')));
}

async function waitForPolls(page, atLeast) {
  await page.waitForFunction(
    (n) => Number(document.getElementById('updated-at').getAttribute('data-polls')) >= n,
    atLeast,
    { timeout: UI_TIMEOUT_MS },
  );
}

// What the page shows: figures, model rows, the chart.
async function readPage(page) {
  return page.evaluate(() => {
    const q = (id) => document.getElementById(id);
    const rows = Array.from(document.querySelectorAll('#model-rows tr[data-model]')).map((tr) => {
      const cell = (col) => tr.querySelector(`td[data-col="${col}"]`);
      return {
        model: tr.getAttribute('data-model'),
        text: cell('model').textContent,
        cellChildren: cell('model').children.length,
        entries: cell('entries').getAttribute('data-value'),
        hits: cell('hits').getAttribute('data-value'),
        hitsText: cell('hits').textContent,
      };
    });
    const line = q('hit-rate-line');
    return {
      hitRate: q('hit-rate').textContent,
      hitRateValue: q('hit-rate').getAttribute('data-value'),
      hits: q('hits').getAttribute('data-value'),
      misses: q('misses').getAttribute('data-value'),
      requests: q('requests').getAttribute('data-value'),
      rows,
      points: line ? Number(line.getAttribute('data-points')) : -1,
      pathD: line ? line.getAttribute('d') : '',
      images: document.querySelectorAll('img').length,
      tableImages: document.querySelectorAll('#models img').length,
      storeStatus: (document.querySelector('#store dd[data-key="status"]') || {}).textContent,
      tokenFormHidden: q('token-form').hidden,
    };
  });
}

// Records what a page does that the test forbids.
function watch(page, port, { allowStatus = [] } = {}) {
  const w = { consoleErrors: [], pageErrors: [], failed: [], foreign: [], badStatus: [], dialogs: [], requests: 0 };
  const origin = `http://127.0.0.1:${port}/`;
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // The browser's own line for an answer we allow (a 401 of /stats).
    if (allowStatus.some((s) => m.text().includes(`status of ${s}`))) return;
    w.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => w.pageErrors.push(String(e)));
  page.on('dialog', (d) => {
    w.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('request', (r) => {
    w.requests += 1;
    const url = r.url();
    if (!url.startsWith(origin) && !url.startsWith('data:')) w.foreign.push(url);
  });
  page.on('requestfailed', (r) => w.failed.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !allowStatus.includes(r.status())) w.badStatus.push(`${r.url()}: ${r.status()}`);
  });
  return w;
}

function checkClean(w, what) {
  check(w.consoleErrors.length === 0, `${what}: no console errors (${JSON.stringify(w.consoleErrors)})`);
  check(w.pageErrors.length === 0, `${what}: no page errors (${JSON.stringify(w.pageErrors)})`);
  check(w.failed.length === 0 && w.badStatus.length === 0,
    `${what}: no failed requests (${JSON.stringify(w.failed.concat(w.badStatus))})`);
  check(w.foreign.length === 0, `${what}: ${w.requests} requests, none to another host (${JSON.stringify(w.foreign)})`);
  check(w.dialogs.length === 0, `${what}: no dialog opened (${JSON.stringify(w.dialogs)})`);
}

async function openRun(binary, fakePort, chromium) {
  const { serve, port } = await startServe(binary, fakePort, 'serve-open', []);
  console.log(`serve (operator views open) on ${port}`);

  // Misses and hits on two models, one of them with an HTML id.
  check(await complete(port, MODEL, 'a cache') === 'MISS', 'model A #1 MISS');
  check(await complete(port, MODEL, 'a cache') === 'HIT', 'model A #2 HIT');
  check(await complete(port, MODEL, 'a proxy') === 'MISS', 'model A other prompt MISS');
  check(await complete(port, HOSTILE, 'a cache') === 'MISS', 'hostile model #1 MISS');
  check(await complete(port, HOSTILE, 'a cache') === 'HIT', 'hostile model #2 HIT');

  const context = await chromium.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const w = watch(page, port);
  const response = await page.goto(`http://127.0.0.1:${port}/dashboard?interval=${POLL_MS}`);
  check(response.status() === 200, `GET /dashboard 200 (got ${response.status()})`);
  check((response.headers()['content-security-policy'] || '').includes("script-src 'self'"), 'the page has its CSP');
  await waitForPolls(page, 1);

  let s = await stats(port);
  let view = await readPage(page);
  const byModel = new Map(s.cache.models.map((m) => [m.model, m]));
  check(view.rows.length === s.cache.models.length && s.cache.models.length === 2,
    `one row per model (${view.rows.map((r) => r.model).join(', ')})`);
  for (const row of view.rows) {
    const m = byModel.get(row.model);
    check(m !== undefined, `row ${JSON.stringify(row.model)} is a model of /stats`);
    check(row.entries === String(m.entries) && row.hits === String(m.hits),
      `row ${JSON.stringify(row.model)}: entries ${row.entries}, hits ${row.hits} as /stats (${m.entries}, ${m.hits})`);
  }
  check(view.rows.some((r) => r.model === MODEL && r.entries === '2' && r.hits === '1'), `${MODEL}: 2 entries, 1 hit`);
  const hostile = view.rows.find((r) => r.model === HOSTILE);
  check(hostile !== undefined && hostile.text === HOSTILE && hostile.cellChildren === 0,
    `the hostile model id is shown as text (${JSON.stringify(hostile?.text)})`);
  check(view.images === 0 && view.tableImages === 0, `no element was injected (${view.images} <img>)`);
  check(view.hitRate === pct(s.cache.hit_rate), `hit rate shown ${view.hitRate} = /stats cache.hit_rate ${pct(s.cache.hit_rate)}`);
  check(view.hits === String(s.proxy.hits) && view.misses === String(s.proxy.misses),
    `hits ${view.hits} and misses ${view.misses} as /stats proxy (${s.proxy.hits}, ${s.proxy.misses})`);
  check(view.points >= 1 && /^M[\d.]+ [\d.]+/.test(view.pathD), `the chart has a drawn path (${view.points} points: ${view.pathD.slice(0, 40)})`);
  check(view.storeStatus === 'ok', `store status shown (${view.storeStatus})`);

  // More traffic: the next polls show it.
  const before = view;
  check(await complete(port, MODEL, 'a proxy') === 'HIT', 'model A other prompt HIT');
  check(await complete(port, MODEL, 'a cache') === 'HIT', 'model A #3 HIT');
  check(await complete(port, MODEL, 'a queue') === 'MISS', 'model A third prompt MISS');
  // Two more polls: the first may have started before the traffic ended.
  await waitForPolls(page, (await polls(page)) + 2);
  s = await stats(port);
  view = await readPage(page);
  check(Number(view.hits) === Number(before.hits) + 2, `hits went from ${before.hits} to ${view.hits}`);
  check(view.hitRate === pct(s.cache.hit_rate) && view.hitRate !== before.hitRate,
    `hit rate updated from ${before.hitRate} to ${view.hitRate} (/stats ${pct(s.cache.hit_rate)})`);
  check(view.points > before.points, `the chart got new points (${before.points} -> ${view.points})`);
  check(view.rows.some((r) => r.model === MODEL && r.entries === '3' && r.hits === '3'), `${MODEL} row updated: 3 entries, 3 hits`);

  // A narrow screen: nothing wider than the viewport but the table's box.
  await page.setViewportSize({ width: 375, height: 700 });
  await waitForPolls(page, (await polls(page)) + 1);
  const narrow = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth,
    tableBox: document.querySelector('.table-wrap').clientWidth,
    cardTops: new Set(Array.from(document.querySelectorAll('.cards .card')).map((c) => Math.round(c.getBoundingClientRect().top))).size,
  }));
  check(narrow.scrollWidth <= 376 && narrow.bodyScrollWidth <= 376,
    `no horizontal overflow at 375 px (scrollWidth ${narrow.scrollWidth}, body ${narrow.bodyScrollWidth})`);
  check(narrow.tableBox <= 375, `the table scrolls inside its own box (${narrow.tableBox} px wide)`);
  check(narrow.cardTops > 1, `the cards wrap onto ${narrow.cardTops} rows`);

  checkClean(w, 'open dashboard');
  await context.close();
  await stopChild(serve);
}

// Provider prompt caching: with --prompt-cache auto, the second turn of a
// conversation reads the first turn's prefix from the provider's cache (the
// fake's simulation); the page shows the saving /stats reports, apart from
// the response cache's.
async function promptCacheRun(binary, fakePort, chromium) {
  const { serve, port } = await startServe(binary, fakePort, 'serve-prompt-cache',
    ['--prompt-cache', 'auto']);
  console.log(`serve (--prompt-cache auto) on ${port}`);
  const system = 'You review code. '.repeat(600);
  const turn = async (messages) => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({
        model: SONNET, temperature: 0,
        messages: [{ role: 'system', content: system }, ...messages],
      }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = await res.json();
    if (res.status !== 200) fail(`prompt-cache turn answered ${res.status}`);
    return body.usage?.prompt_tokens_details?.cached_tokens || 0;
  };
  check(await turn([{ role: 'user', content: 'first question' }]) === 0, 'turn 1 reads nothing cached');
  const read = await turn([
    { role: 'user', content: 'first question' },
    { role: 'assistant', content: 'first answer' },
    { role: 'user', content: 'second question' },
  ]);
  check(read > 1000, `turn 2 reads the cached prefix (${read} tokens)`);

  const context = await chromium.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const w = watch(page, port);
  await page.goto(`http://127.0.0.1:${port}/dashboard?interval=${POLL_MS}`);
  await waitForPolls(page, 1);
  const s = await stats(port);
  const m = s.cache.models.find((x) => x.model === SONNET);
  check(m !== undefined && m.provider_cache_read_tokens === read,
    `/stats counts the read (${m?.provider_cache_read_tokens})`);
  const shown = await page.evaluate((model) => {
    const tr = Array.from(document.querySelectorAll('#model-rows tr[data-model]'))
      .find((r) => r.getAttribute('data-model') === model);
    const cell = (col) => tr?.querySelector(`td[data-col="${col}"]`)?.getAttribute('data-value');
    return {
      saved: document.getElementById('prompt-cache-saved').getAttribute('data-value'),
      savedText: document.getElementById('prompt-cache-saved').textContent,
      responseSaved: document.getElementById('cost-saved').getAttribute('data-value'),
      rowRead: cell('prompt_cache_read_tokens'),
      rowSaved: cell('prompt_cache_saved_usd'),
    };
  }, SONNET);
  check(m !== undefined && m.provider_cache_saved_usd > 0 &&
    Math.abs(Number(shown.saved) - m.provider_cache_saved_usd) < 1e-9,
    `provider prompt-cache saving shown ${shown.savedText} = /stats ${m?.provider_cache_saved_usd}`);
  check(shown.rowRead === String(read), `the model's row shows ${shown.rowRead} cached tokens read`);
  check(Number(shown.rowSaved) === m?.provider_cache_saved_usd, `the model's row shows the saving (${shown.rowSaved})`);
  check(Number(shown.responseSaved) === s.cache.cost_saved_usd,
    `the response cache's saving is shown apart (${shown.responseSaved})`);
  checkClean(w, 'prompt-cache dashboard');
  await context.close();
  await stopChild(serve);
}

async function closedRun(binary, fakePort, chromium) {
  const { serve, port } = await startServe(binary, fakePort, 'serve-closed',
    ['--open-operator-views=false', '--admin-token', ADMIN_TOKEN]);
  console.log(`serve (operator views closed) on ${port}`);
  check(await complete(port, MODEL, 'a lock') === 'MISS', 'closed: a MISS');
  const unauthorized = await fetch(`http://127.0.0.1:${port}/stats`);
  await unauthorized.arrayBuffer();
  check(unauthorized.status === 401, `closed: /stats without the token is 401 (got ${unauthorized.status})`);

  const context = await chromium.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  const w = watch(page, port, { allowStatus: [401] });
  await page.goto(`http://127.0.0.1:${port}/dashboard?interval=${POLL_MS}`);
  await page.waitForSelector('#token-form:not([hidden])', { timeout: UI_TIMEOUT_MS });
  check(await polls(page) === 0, 'closed: the token form is shown and no data');

  await page.fill('#token-input', 'not-the-token');
  await page.click('#token-submit');
  await page.waitForFunction(() => /refused/.test(document.getElementById('token-message').textContent),
    null, { timeout: UI_TIMEOUT_MS });
  check(await page.isVisible('#token-form'), 'closed: a wrong token is refused and the form asks again');

  await page.fill('#token-input', ADMIN_TOKEN);
  await page.press('#token-input', 'Enter');
  await waitForPolls(page, 1);
  const view = await readPage(page);
  const s = await stats(port, ADMIN_TOKEN);
  check(view.tokenFormHidden, 'closed: the form goes away once the token is accepted');
  check(view.hitRate === pct(s.cache.hit_rate) && view.rows.some((r) => r.model === MODEL),
    `closed: data shown with the token (hit rate ${view.hitRate}, ${view.rows.length} model rows)`);
  const kept = await page.evaluate(() => ({
    session: sessionStorage.getItem('llmcache.admin-token'),
    local: localStorage.length,
    url: location.href,
  }));
  check(kept.session === ADMIN_TOKEN && kept.local === 0, 'closed: the token is in sessionStorage, nothing in localStorage');
  check(!kept.url.includes(ADMIN_TOKEN), `closed: the token is not in the URL (${kept.url})`);
  checkClean(w, 'closed dashboard');
  await context.close();
  await stopChild(serve);
}

async function run(binary) {
  if (!existsSync(CHROMIUM)) {
    fail(`no Chromium at ${CHROMIUM}: install Debian's chromium package (apt-get install chromium; scripts/setup.sh does)`);
  }
  if (!existsSync(path.join(here, 'node_modules', 'playwright-core'))) {
    fail(`playwright-core is not installed in ${path.join(here, 'node_modules')}: run \`npm ci --prefix tests/browser\``);
  }
  if (!existsSync(binary)) fail(`no llmcache binary at ${binary}`);
  const { chromium } = await import('playwright-core');

  tempDir = mkdtempSync(path.join(os.tmpdir(), 'llmcache-dashboard-'));
  const fakePort = await freePort();
  const fake = startChild('fake-openrouter', binary, ['fake-openrouter', '--listen', `127.0.0.1:${fakePort}`, '-q']);
  await waitReady(fake, () => tcpConnects(fakePort));

  // CI runs as root: Chromium's sandbox needs --no-sandbox there.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  await openRun(binary, fakePort, browser);
  await promptCacheRun(binary, fakePort, browser);
  await closedRun(binary, fakePort, browser);
  await browser.close();
  browser = null;
  await stopChild(fake);
}

async function main() {
  const binary = process.argv[2];
  if (!binary) {
    console.error('usage: node dashboard_browser_test.mjs path/to/llmcache');
    return 2;
  }
  const started = Date.now();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TestFailure(`timed out after ${OVERALL_TIMEOUT_MS / 1000} s`)), OVERALL_TIMEOUT_MS);
  });
  try {
    await Promise.race([run(path.resolve(binary)), timeout]);
    console.log(`PASS: ${checkCount()} checks in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (err) {
    console.error(`FAIL: ${err instanceof TestFailure ? err.message : err?.stack ?? err}`);
    reportChildren();
    return 1;
  } finally {
    clearTimeout(timer);
    if (browser) await browser.close().catch(() => {});
    killChildrenNow();
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killChildrenNow();
    process.exit(1);
  });
}
process.on('exit', killChildrenNow);

process.exitCode = await main();
process.exit(process.exitCode);
