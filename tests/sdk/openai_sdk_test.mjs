// End-to-end test of `llmcache serve` with the official OpenAI SDK for Node
// and Anthropic's SDK (@anthropic-ai/sdk).
//
//   node tests/sdk/openai_sdk_test.mjs path/to/llmcache
//
// Starts `llmcache fake-openrouter` and `llmcache serve` in front of it on free
// loopback ports (nothing leaves the machine), then sends through the SDK:
//   - one non-stream completion twice: X-Cache MISS, then HIT, same content;
//   - one streamed completion (other messages) twice: MISS, then HIT, the same
//     assembled content and a finish_reason both times;
//   - embeddings.create with a batch twice (MISS, then HIT, the same vectors),
//     then a batch that overlaps it by half (the shared inputs' vectors equal,
//     every index in order, usage counting only the new inputs);
//   - responses.create, non-stream and stream, each twice (MISS, then HIT,
//     the same output text);
//   - Anthropic's messages.create, non-stream and stream, each twice (MISS,
//     then HIT, the same text and stop_reason).
// Exit code 0 when every check passes, 1 otherwise (with the reason and the
// children's output). The children are stopped in every case.
// Needs the SDK installed once: npm ci --prefix tests/sdk

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  TestFailure,
  check,
  checkCount,
  describeExit,
  fail,
  freePort,
  healthy,
  killChildren,
  reportChildren,
  startChild,
  stopChildren,
  tcpConnects,
  waitReady,
} from '../js/harness.mjs';

const OVERALL_TIMEOUT_MS = 90_000;
const REQUEST_TIMEOUT_MS = 15_000;
const API_KEY = 'sk-test-local'; // accepted by the fake; never written anywhere
const MODEL = 'openai/gpt-4o-mini';

const here = path.dirname(fileURLToPath(import.meta.url));
let tempDir = '';

function killChildrenNow() {
  killChildren();
  if (tempDir) {
    rmSync(tempDir, { recursive: true, force: true });
    tempDir = '';
  }
}

function header(response, name) {
  return response.headers.get(name);
}

function messages(topic) {
  return [
    { role: 'system', content: 'You are a concise assistant. Answer in one sentence.' },
    { role: 'user', content: `In one sentence: what is ${topic}?` },
  ];
}

async function run(binary) {
  if (!existsSync(path.join(here, 'node_modules', 'openai'))) {
    fail(`the openai package is not installed in ${path.join(here, 'node_modules')}: run \`npm ci --prefix tests/sdk\``);
  }
  const { default: OpenAI } = await import('openai');
  if (!existsSync(binary)) fail(`no llmcache binary at ${binary}`);

  tempDir = mkdtempSync(path.join(os.tmpdir(), 'llmcache-sdk-'));
  const fakePort = await freePort();
  const fake = startChild('fake-openrouter', binary, ['fake-openrouter', '--listen', `127.0.0.1:${fakePort}`, '-q']);
  await waitReady(fake, () => tcpConnects(fakePort));

  const servePort = await freePort();
  const serve = startChild('serve', binary, [
    'serve',
    '--listen', `127.0.0.1:${servePort}`,
    '--db', path.join(tempDir, 'db'),
    '--upstream', `http://127.0.0.1:${fakePort}/api/v1`,
  ]);
  await waitReady(serve, () => healthy(servePort));
  console.log(`fake-openrouter on ${fakePort}, serve on ${servePort}`);

  const client = new OpenAI({
    baseURL: `http://127.0.0.1:${servePort}/v1`,
    apiKey: API_KEY,
    maxRetries: 0, // a retry would hide a failure
    timeout: REQUEST_TIMEOUT_MS,
  });

  // Non-stream: a miss that is stored, then a hit.
  const body = { model: MODEL, temperature: 0, messages: messages('a cache') };
  const first = await client.chat.completions.create(body).withResponse();
  const second = await client.chat.completions.create(body).withResponse();
  const content1 = first.data.choices?.[0]?.message?.content;
  const content2 = second.data.choices?.[0]?.message?.content;
  check(header(first.response, 'x-cache') === 'MISS', `non-stream #1 X-Cache MISS (got ${header(first.response, 'x-cache')})`);
  check(header(second.response, 'x-cache') === 'HIT', `non-stream #2 X-Cache HIT (got ${header(second.response, 'x-cache')})`);
  const key1 = header(first.response, 'x-cache-key');
  check(Boolean(key1) && key1 === header(second.response, 'x-cache-key'),
    `non-stream X-Cache-Key present and equal (${key1} / ${header(second.response, 'x-cache-key')})`);
  check(/^\d+$/.test(header(second.response, 'age') ?? ''), `non-stream #2 has an Age header (got ${header(second.response, 'age')})`);
  check(typeof content1 === 'string' && content1.length > 0, `non-stream #1 has content (${JSON.stringify(content1)})`);
  check(content2 === content1, 'non-stream #2 has the same content as #1');
  check(first.data.choices[0].finish_reason && second.data.choices[0].finish_reason === first.data.choices[0].finish_reason,
    `non-stream finish_reason equal (${first.data.choices[0].finish_reason})`);

  // Stream, with other messages so the first is a miss (streams and
  // non-streams share entries).
  const streamBody = { model: MODEL, temperature: 0, stream: true, messages: messages('a reverse proxy') };
  const streamed = [];
  for (let i = 1; i <= 2; i += 1) {
    const { data: stream, response } = await client.chat.completions.create(streamBody).withResponse();
    let text = '';
    let finishReason = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      const choice = chunk.choices?.[0];
      if (choice?.delta?.content) text += choice.delta.content;
      if (choice?.finish_reason) finishReason = choice.finish_reason;
    }
    streamed.push({ response, text, finishReason, chunks });
    check((header(response, 'content-type') ?? '').startsWith('text/event-stream'),
      `stream #${i} is text/event-stream (got ${header(response, 'content-type')})`);
    check(finishReason !== null, `stream #${i} delivered a finish_reason (${finishReason}) in ${chunks} chunks`);
  }
  check(header(streamed[0].response, 'x-cache') === 'MISS', `stream #1 X-Cache MISS (got ${header(streamed[0].response, 'x-cache')})`);
  check(header(streamed[1].response, 'x-cache') === 'HIT', `stream #2 X-Cache HIT (got ${header(streamed[1].response, 'x-cache')})`);
  check(streamed[0].text.length > 0, `stream #1 assembled content (${JSON.stringify(streamed[0].text)})`);
  check(streamed[1].text === streamed[0].text, 'stream #2 assembled the same content as #1');
  check(streamed[1].finishReason === streamed[0].finishReason, 'stream finish_reason equal');

  await checkEmbeddings(client);
  await checkResponses(client);
  await checkModels(client);
  await checkMessages(servePort);

  const bad = await stopChildren();
  for (const entry of bad) fail(`${entry.name} did not shut down cleanly: ${describeExit(entry)}`);
}

// models.list and models.retrieve: the upstream's list, and one model of it
// (GET /v1/models/{id}; the id has a slash).
async function checkModels(client) {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  check(ids.includes('openai/gpt-4o-mini'), `models.list has openai/gpt-4o-mini (${ids.length} models)`);
  const one = await client.models.retrieve('openai/gpt-4o-mini');
  check(one.id === 'openai/gpt-4o-mini', `models.retrieve gave the model (got ${JSON.stringify(one.id)})`);
  let status = 0;
  try {
    await client.models.retrieve('openai/no-such-model');
  } catch (e) {
    status = e.status ?? -1;
  }
  check(status === 404, `models.retrieve of an unknown model is a 404 (got ${status})`);
}

async function checkEmbeddings(client) {
  const batch = ['alpha', 'bravo', 'charlie', 'delta'];
  const model = 'openai/text-embedding-3-small';
  const first = await client.embeddings.create({ model, input: batch, encoding_format: 'float' }).withResponse();
  const second = await client.embeddings.create({ model, input: batch, encoding_format: 'float' }).withResponse();
  check(header(first.response, 'x-cache') === 'MISS', `embeddings #1 X-Cache MISS (got ${header(first.response, 'x-cache')})`);
  check(header(second.response, 'x-cache') === 'HIT', `embeddings #2 X-Cache HIT (got ${header(second.response, 'x-cache')})`);
  check(first.data.data.length === 4 && first.data.data.every((d, i) => d.index === i && d.embedding.length > 0),
    'embeddings #1: 4 vectors, indices 0..3');
  check(JSON.stringify(second.data.data) === JSON.stringify(first.data.data), 'embeddings #2 returned the same vectors');
  // Half overlapping, in another order.
  const half = await client.embeddings.create({ model, input: ['echo', 'charlie', 'foxtrot', 'alpha'], encoding_format: 'float' }).withResponse();
  check(header(half.response, 'x-cache') === 'MISS', `overlapping batch X-Cache MISS (got ${header(half.response, 'x-cache')})`);
  const d = half.data.data;
  check(d.length === 4 && d.every((e, i) => e.index === i), 'overlapping batch: indices 0..3 in order');
  check(JSON.stringify(d[1].embedding) === JSON.stringify(first.data.data[2].embedding) &&
    JSON.stringify(d[3].embedding) === JSON.stringify(first.data.data[0].embedding),
    'overlapping batch: the cached inputs have the vectors of the first batch');
  check(half.data.usage.prompt_tokens > 0 && half.data.usage.prompt_tokens < first.data.usage.prompt_tokens + 10,
    `overlapping batch usage counts the new inputs (${half.data.usage.prompt_tokens} tokens)`);
  const again = await client.embeddings.create({ model, input: ['echo', 'charlie', 'foxtrot', 'alpha'], encoding_format: 'float' }).withResponse();
  check(header(again.response, 'x-cache') === 'HIT', `overlapping batch again X-Cache HIT (got ${header(again.response, 'x-cache')})`);
  // The SDK's default encoding (base64, decoded by the SDK).
  const b1 = await client.embeddings.create({ model, input: 'golf' }).withResponse();
  const b2 = await client.embeddings.create({ model, input: 'golf' }).withResponse();
  check(header(b2.response, 'x-cache') === 'HIT' && JSON.stringify(b2.data.data) === JSON.stringify(b1.data.data),
    'base64 embeddings: second call a HIT with the same vector');
}

async function checkResponses(client) {
  const body = { model: MODEL, temperature: 0, input: 'In one sentence: what is a response cache?' };
  const r1 = await client.responses.create(body).withResponse();
  const r2 = await client.responses.create(body).withResponse();
  check(header(r1.response, 'x-cache') === 'MISS', `responses #1 X-Cache MISS (got ${header(r1.response, 'x-cache')})`);
  check(header(r2.response, 'x-cache') === 'HIT', `responses #2 X-Cache HIT (got ${header(r2.response, 'x-cache')})`);
  check(r1.data.output_text.length > 0 && r2.data.output_text === r1.data.output_text,
    `responses #2 output_text equals #1 (${JSON.stringify(r1.data.output_text)})`);
  const streamBody = { ...body, input: 'In one sentence: what is an event stream?', stream: true };
  const runs = [];
  for (let i = 1; i <= 2; i += 1) {
    const { data: stream, response } = await client.responses.create(streamBody).withResponse();
    let text = '';
    let completed = null;
    const types = [];
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') completed = event.response;
    }
    runs.push({ response, text, completed, types });
    check(completed !== null && types[0] === 'response.created',
      `responses stream #${i}: response.created ... response.completed (${types.length} events)`);
  }
  check(header(runs[0].response, 'x-cache') === 'MISS', `responses stream #1 MISS (got ${header(runs[0].response, 'x-cache')})`);
  check(header(runs[1].response, 'x-cache') === 'HIT', `responses stream #2 HIT (got ${header(runs[1].response, 'x-cache')})`);
  check(runs[0].text.length > 0 && runs[1].text === runs[0].text, 'responses stream #2 assembled the same text as #1');
  check(JSON.stringify(runs[1].completed.output) === JSON.stringify(runs[0].completed.output),
    'responses stream #2 completed with the same output');
}

async function checkMessages(servePort) {
  if (!existsSync(path.join(here, 'node_modules', '@anthropic-ai', 'sdk'))) {
    fail('the @anthropic-ai/sdk package is not installed: run `npm ci --prefix tests/sdk`');
  }
  const { default: Anthropic } = await import('@anthropic-ai/sdk');
  const anthropic = new Anthropic({
    baseURL: `http://127.0.0.1:${servePort}`,
    apiKey: API_KEY,
    maxRetries: 0,
    timeout: REQUEST_TIMEOUT_MS,
  });
  const body = {
    model: 'anthropic/claude-sonnet-4.5',
    max_tokens: 256,
    temperature: 0,
    system: 'You are a concise assistant.',
    messages: [{ role: 'user', content: 'In one sentence: what is a cache?' }],
  };
  const m1 = await anthropic.messages.create(body).withResponse();
  const m2 = await anthropic.messages.create(body).withResponse();
  const text = (m) => m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  check(header(m1.response, 'x-cache') === 'MISS', `messages #1 X-Cache MISS (got ${header(m1.response, 'x-cache')})`);
  check(header(m2.response, 'x-cache') === 'HIT', `messages #2 X-Cache HIT (got ${header(m2.response, 'x-cache')})`);
  check(text(m1.data).length > 0 && text(m2.data) === text(m1.data), `messages #2 text equals #1 (${JSON.stringify(text(m1.data))})`);
  check(m2.data.stop_reason === m1.data.stop_reason, `messages stop_reason equal (${m1.data.stop_reason})`);
  const streamBody = { ...body, messages: [{ role: 'user', content: 'In one sentence: what is a stream?' }] };
  const runs = [];
  for (let i = 1; i <= 2; i += 1) {
    const stream = anthropic.messages.stream(streamBody);
    let deltas = '';
    stream.on('text', (t) => { deltas += t; });
    const final = await stream.finalMessage();
    const response = (await stream.withResponse()).response;
    runs.push({ response, deltas, final });
    check(final.stop_reason !== null && deltas === text(final),
      `messages stream #${i}: text deltas assemble the final message (${final.stop_reason})`);
  }
  check(header(runs[0].response, 'x-cache') === 'MISS', `messages stream #1 MISS (got ${header(runs[0].response, 'x-cache')})`);
  check(header(runs[1].response, 'x-cache') === 'HIT', `messages stream #2 HIT (got ${header(runs[1].response, 'x-cache')})`);
  check(runs[0].deltas.length > 0 && runs[1].deltas === runs[0].deltas, 'messages stream #2 assembled the same text as #1');
}

async function main() {
  const binary = process.argv[2];
  if (!binary) {
    console.error('usage: node openai_sdk_test.mjs path/to/llmcache');
    return 2;
  }
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TestFailure(`timed out after ${OVERALL_TIMEOUT_MS / 1000} s`)), OVERALL_TIMEOUT_MS);
  });
  try {
    await Promise.race([run(path.resolve(binary)), timeout]);
    console.log(`PASS: ${checkCount()} checks`);
    return 0;
  } catch (err) {
    console.error(`FAIL: ${err instanceof TestFailure ? err.message : err?.stack ?? err}`);
    reportChildren();
    return 1;
  } finally {
    clearTimeout(timer);
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
