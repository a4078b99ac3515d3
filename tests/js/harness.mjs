// What the Node end-to-end tests (tests/sdk, tests/browser) share: numbered
// checks that stop the test at the first failure, free loopback ports, and
// child processes (`llmcache fake-openrouter`, `llmcache serve`) started,
// probed until ready, stopped, and reported with the tail of their output
// when a test fails.

import { spawn } from 'node:child_process';
import net from 'node:net';

export class TestFailure extends Error {}

export function fail(message) {
  throw new TestFailure(message);
}

let checksPassed = 0;

export function check(condition, message) {
  if (!condition) fail(message);
  checksPassed += 1;
  console.log(`ok ${checksPassed} - ${message}`);
}

// How many checks have passed so far.
export function checkCount() {
  return checksPassed;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A free loopback port: bind port 0, read the port, close.
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Every child started, in order.
const children = [];

// Starts a child process and keeps the tail of its output for failure reports.
export function startChild(name, file, args) {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { name, child, output: '', exited: false, code: null, signal: null, spawnError: null };
  const keep = (data) => {
    entry.output = (entry.output + data.toString()).slice(-8192);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (err) => {
    entry.spawnError = err;
    entry.exited = true;
  });
  entry.exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      entry.exited = true;
      entry.code = code;
      entry.signal = signal;
      resolve();
    });
  });
  children.push(entry);
  return entry;
}

export function describeExit(entry) {
  if (entry.spawnError) return `could not start: ${entry.spawnError.message}`;
  return entry.signal ? `killed by ${entry.signal}` : `exited with code ${entry.code}`;
}

export function tcpConnects(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

// True when GET /healthz on the port answers 2xx within a second.
export async function healthy(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

// Polls `probe` until it is true; fails when the child exits first or after
// `timeoutMs`.
export async function waitReady(entry, probe, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (entry.exited) fail(`${entry.name} ${describeExit(entry)} before it was ready`);
    if (await probe()) return;
    await sleep(100);
  }
  fail(`${entry.name} not ready after ${timeoutMs / 1000} s`);
}

// SIGTERM, then SIGKILL after 3 s. True when it shut down cleanly: exit code
// 0, or died of the SIGTERM it was sent.
async function terminate(entry) {
  if (!entry.exited) {
    entry.child.kill('SIGTERM');
    const timer = setTimeout(() => entry.child.kill('SIGKILL'), 3000);
    await entry.exitPromise;
    clearTimeout(timer);
  }
  return entry.code === 0 || entry.signal === 'SIGTERM';
}

// Stops one child; fails when it did not shut down cleanly.
export async function stopChild(entry) {
  if (!(await terminate(entry))) {
    fail(`${entry.name} did not shut down cleanly: ${describeExit(entry)}`);
  }
}

// Stops every child still running; resolves with those that did not shut
// down cleanly.
export async function stopChildren() {
  const running = children.filter((entry) => !entry.exited);
  const clean = await Promise.all(running.map(terminate));
  return running.filter((_, i) => !clean[i]);
}

// SIGKILL to every child still running (on failure, timeout or a signal).
export function killChildren() {
  for (const entry of children) {
    if (!entry.exited) entry.child.kill('SIGKILL');
  }
}

// The output tail of every child that wrote anything, to stderr.
export function reportChildren() {
  for (const entry of children) {
    if (entry.output) console.error(`--- ${entry.name} output (tail):\n${entry.output}`);
  }
}
