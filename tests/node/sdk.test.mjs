// Client test with the official OpenAI Node SDK (openai@6) against a real tollgate process that
// forwards to fake_upstream_server (tests/support/fake_upstream_main.cpp, scripted over stdin).
//
// Run by ctest as `node_openai_sdk` (tests/CMakeLists.txt), which sets:
//   TOLLGATE_BIN       path of the tollgate binary
//   FAKE_UPSTREAM_BIN  path of fake_upstream_server
// By hand: cd tests/node && npm ci && TOLLGATE_BIN=../../build/tollgate \
//          FAKE_UPSTREAM_BIN=../../build/tests/fake_upstream_server node --test sdk.test.mjs
//
// Every wait is bounded, and both child processes are killed in `after` (and, as a last resort,
// synchronously when this process exits), so a broken server fails the test instead of hanging it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

import OpenAI from 'openai';

const CLIENT_KEY = 'sk-test-12345678';
const ALIAS = 'gpt-test';
const UPSTREAM_MODEL = 'upstream-model';
const FAKE_CONTENT = 'Hello from fake upstream'; // what fake_upstream answers for chat/completions
const FAKE_USAGE = { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 };

const STARTUP_MS = 15_000;
const COMMAND_MS = 5_000;
const REQUEST_MS = 10_000; // SDK timeout per request
const TEST_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// helpers

function requireEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (ctest sets it; see the top of this file)`);
  if (!fs.existsSync(v)) throw new Error(`${name}=${v} does not exist (build it first)`);
  return v;
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A port that was free a moment ago: listen on port 0, read it, close.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Keeps the last `limit` characters a child wrote, for failure messages.
function captureOutput(child, label) {
  const log = { text: '' };
  const add = (chunk) => {
    log.text += chunk.toString();
    if (log.text.length > 16_000) log.text = log.text.slice(-16_000);
  };
  child.stderr?.on('data', add);
  child.stdout?.on('data', add);
  log.dump = () => (log.text.trim() ? `\n--- ${label} output (tail) ---\n${log.text}\n--- end ---` : '');
  return log;
}

const children = new Set();

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

// SIGTERM, then SIGKILL if it is still alive after `graceMs`. Resolves once it has exited.
async function stopChild(child, graceMs = 5_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  try {
    await withTimeout(exited, graceMs, `pid ${child.pid} to exit on SIGTERM`);
  } catch {
    child.kill('SIGKILL');
    await withTimeout(exited, 2_000, `pid ${child.pid} to exit on SIGKILL`).catch(() => {});
  }
}

// Last resort (e.g. an uncaught error skipped `after`): never leave servers behind.
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
});

// ---------------------------------------------------------------------------------------------
// fake_upstream_server: one command line in, one answer line out (protocol: fake_upstream_main.cpp)

class FakeUpstream {
  static async start(bin) {
    const f = new FakeUpstream();
    f.child = track(spawn(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] }));
    f.stderr = captureOutput({ stderr: f.child.stderr }, 'fake_upstream_server');
    f.waiters = [];
    f.exited = false;
    f.spawnError = null;
    f.child.stdin.on('error', () => {}); // EPIPE when it died: reported through 'exit'
    f.child.on('error', (e) => {
      f.spawnError = e;
      f.failWaiters(`cannot run ${bin}: ${e.message}`);
    });
    f.child.on('exit', (code, signal) => {
      f.exited = true;
      f.failWaiters(`fake_upstream_server exited (code ${code}, signal ${signal})${f.stderr.dump()}`);
    });
    readline.createInterface({ input: f.child.stdout }).on('line', (line) => {
      const w = f.waiters.shift();
      if (w) w.resolve(line);
    });
    const first = await withTimeout(f.nextLine(), STARTUP_MS, 'fake_upstream_server to print PORT');
    const m = /^PORT (\d+)$/.exec(first);
    if (!m) throw new Error(`fake_upstream_server: expected "PORT <n>", got ${JSON.stringify(first)}`);
    f.port = Number(m[1]);
    return f;
  }

  failWaiters(message) {
    for (const w of this.waiters.splice(0)) w.reject(new Error(message));
  }

  nextLine() {
    if (this.exited || this.spawnError) return Promise.reject(new Error('fake_upstream_server is not running'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  // Sends one command and returns its answer line. Commands are serialised by the caller (the tests
  // run one at a time), so answers arrive in order.
  async command(line) {
    const answer = this.nextLine();
    this.child.stdin.write(line + '\n');
    return withTimeout(answer, COMMAND_MS, `fake_upstream_server answer to ${JSON.stringify(line)}`);
  }

  async script(line) {
    const answer = await this.command(line);
    assert.equal(answer, 'OK', `fake_upstream_server rejected ${JSON.stringify(line)}: ${answer}`);
  }

  async count() {
    const answer = await this.command('count');
    const m = /^COUNT (\d+)$/.exec(answer);
    assert.ok(m, `unexpected answer to count: ${answer}`);
    return Number(m[1]);
  }

  // The last request the fake received: {method, target, headers, body (parsed JSON or raw)}.
  async last() {
    const answer = await this.command('last');
    assert.ok(answer.startsWith('LAST '), `unexpected answer to last: ${answer}`);
    const r = JSON.parse(answer.slice(5));
    assert.ok(r, 'the fake upstream has received no request');
    try {
      r.json = JSON.parse(r.body);
    } catch {
      r.json = undefined;
    }
    return r;
  }

  async stop() {
    if (!this.child) return;
    this.child.stdin.end(); // EOF asks it to exit; SIGTERM/SIGKILL if it does not
    await stopChild(this.child);
  }
}

// ---------------------------------------------------------------------------------------------
// tollgate

function writeConfig(dir, port, upstreamPort) {
  const file = path.join(dir, 'tollgate.yaml');
  const yaml = `# written by tests/node/sdk.test.mjs
server:
  listen: "127.0.0.1:${port}"
  io_threads: 2
  shutdown_grace_ms: 0
  data_dir: "${path.join(dir, 'data')}"
  log_level: warn
auth:
  keys:
    - name: app
      key: ${CLIENT_KEY}
targets:
  fake:
    base_url: http://127.0.0.1:${upstreamPort}/v1
    model: ${UPSTREAM_MODEL}
    # One try per request, so upstream 429/500 reach the SDK instead of being retried here.
    retry: {max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1000}
    # Scripted upstream errors must not open the breaker for the tests that follow.
    circuit_breaker: {failure_threshold: 1000, cooldown_ms: 1}
    timeouts: {connect_ms: 2000, first_byte_ms: 10000, total_ms: 20000, stream_idle_ms: 10000}
models:
  ${ALIAS}: fake
`;
  fs.writeFileSync(file, yaml);
  return file;
}

async function waitHealthy(baseUrl, child, log) {
  const deadline = Date.now() + STARTUP_MS;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const e = new Error(`tollgate exited during start-up (code ${child.exitCode}, signal ${child.signalCode})${log.dump()}`);
      e.exitedEarly = true; // e.g. the port was taken after freePort(): worth another try
      throw e;
    }
    try {
      const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (res.status === 200) return;
      lastError = `HTTP ${res.status}`;
    } catch (e) {
      lastError = e.cause?.code ?? e.message;
    }
    await sleep(50);
  }
  throw new Error(`tollgate not healthy after ${STARTUP_MS} ms (${lastError})${log.dump()}`);
}

// Starts tollgate on a port picked just before; another process may grab that port in between,
// so an early exit is retried a few times with a fresh port (a hang is not).
async function startTollgate(bin, dir, upstreamPort) {
  let lastError;
  for (let attempt = 0; attempt < 3; ++attempt) {
    const port = await freePort();
    const config = writeConfig(dir, port, upstreamPort);
    const child = track(spawn(bin, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir }));
    const log = captureOutput(child, 'tollgate');
    const spawnFailed = new Promise((_, reject) => child.on('error', (e) => reject(new Error(`cannot run ${bin}: ${e.message}`))));
    const origin = `http://127.0.0.1:${port}`;
    try {
      await Promise.race([waitHealthy(origin, child, log), spawnFailed]);
      return { child, log, origin };
    } catch (e) {
      lastError = e;
      await stopChild(child);
      if (!e.exitedEarly) break;
    }
  }
  throw lastError;
}

// ---------------------------------------------------------------------------------------------
// the tests

describe('OpenAI Node SDK against tollgate', { timeout: 110_000 }, () => {
  let fake;
  let gw;
  let tmp;

  const client = (options = {}) =>
    new OpenAI({
      baseURL: `${gw.origin}/v1`,
      apiKey: CLIENT_KEY,
      maxRetries: 0,
      timeout: REQUEST_MS,
      ...options,
    });

  // Runs fn and returns the error it throws; fails if it does not throw.
  async function rejection(fn) {
    try {
      await fn();
    } catch (e) {
      return e;
    }
    assert.fail('expected the SDK call to throw');
  }

  before(async () => {
    const tollgateBin = requireEnv('TOLLGATE_BIN');
    const fakeBin = requireEnv('FAKE_UPSTREAM_BIN');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tollgate-sdk-'));
    fake = await FakeUpstream.start(fakeBin);
    gw = await startTollgate(tollgateBin, tmp, fake.port);
  });

  after(async () => {
    const failures = [];
    await Promise.allSettled([
      gw && stopChild(gw.child).catch((e) => failures.push(e)),
      fake && fake.stop().catch((e) => failures.push(e)),
    ]);
    if (gw && gw.child.exitCode !== 0 && gw.child.exitCode !== null)
      console.error(`tollgate exited with code ${gw.child.exitCode}${gw.log.dump()}`);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (failures.length) throw failures[0];
  });

  test('models.list() lists the configured alias', { timeout: TEST_MS }, async () => {
    const ids = [];
    for await (const m of client().models.list()) {
      assert.equal(m.object, 'model');
      ids.push(m.id);
    }
    assert.ok(ids.includes(ALIAS), `models: ${JSON.stringify(ids)}`);
  });

  test('chat.completions.create: content and usage as the upstream sent them', { timeout: TEST_MS }, async () => {
    await fake.script('default ok');
    const { data: res, request_id } = await client()
      .chat.completions.create({ model: ALIAS, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.equal(res.choices[0].message.content, FAKE_CONTENT);
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.deepEqual(
      { prompt_tokens: res.usage.prompt_tokens, completion_tokens: res.usage.completion_tokens, total_tokens: res.usage.total_tokens },
      FAKE_USAGE,
    );
    assert.equal(res.usage.prompt_tokens_details?.cached_tokens, 3);
    assert.ok(request_id, 'the response carries x-request-id');

    const up = await fake.last();
    assert.equal(up.method, 'POST');
    assert.equal(up.target, '/v1/chat/completions');
    assert.equal(up.json?.model, UPSTREAM_MODEL, 'tollgate sends the target model upstream');
    assert.deepEqual(up.json?.messages, [{ role: 'user', content: 'hi' }]);
  });

  test('chat.completions.create stream: chunks concatenate to the streamed text', { timeout: TEST_MS }, async () => {
    await fake.script('push stream chunks=4');
    const stream = await client().chat.completions.create({
      model: ALIAS,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    let text = '';
    let finish = null;
    let n = 0;
    for await (const chunk of stream) {
      ++n;
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.ok(!chunk.usage, `no usage was asked for, got ${JSON.stringify(chunk.usage)}`);
      for (const c of chunk.choices) {
        text += c.delta?.content ?? '';
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(text, 'tok0 tok1 tok2 tok3 ');
    assert.equal(finish, 'stop');
    assert.equal(n, 5, '4 content chunks and the finish chunk');
    const up = await fake.last();
    assert.equal(up.json?.stream, true);
    assert.equal(up.json?.model, UPSTREAM_MODEL);
  });

  test('chat stream with stream_options.include_usage: the last chunk has usage', { timeout: TEST_MS }, async () => {
    await fake.script('push stream chunks=3');
    const stream = await client().chat.completions.create({
      model: ALIAS,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices.map((ch) => ch.delta?.content ?? '').join('')).join('');
    assert.equal(text, 'tok0 tok1 tok2 ');
    const last = chunks.at(-1);
    assert.ok(last.usage, `last chunk: ${JSON.stringify(last)}`);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, 11);
    assert.equal(last.usage.completion_tokens, 3);
    assert.equal(last.usage.total_tokens, 14);
    for (const c of chunks.slice(0, -1)) assert.ok(!c.usage, 'only the last chunk carries usage');
  });

  test('completions.create, plain and streamed', { timeout: TEST_MS }, async () => {
    await fake.script('default ok');
    const res = await client().completions.create({ model: ALIAS, prompt: 'Say hi' });
    assert.equal(res.object, 'text_completion');
    assert.equal(res.choices[0].text, FAKE_CONTENT);
    assert.equal(res.usage.total_tokens, FAKE_USAGE.total_tokens);
    let up = await fake.last();
    assert.equal(up.target, '/v1/completions');
    assert.equal(up.json?.model, UPSTREAM_MODEL);
    assert.equal(up.json?.prompt, 'Say hi');

    await fake.script('push stream chunks=2');
    const stream = await client().completions.create({ model: ALIAS, prompt: 'Say hi', stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices.map((c) => c.text).join('');
    assert.equal(text, 'tok0 tok1 ');
    up = await fake.last();
    assert.equal(up.target, '/v1/completions');
  });

  test('embeddings.create returns a vector of 3', { timeout: TEST_MS }, async () => {
    await fake.script('default ok');
    // encoding_format is explicit: without it the SDK asks for base64, which the fake ignores.
    const res = await client().embeddings.create({ model: ALIAS, input: 'hello', encoding_format: 'float' });
    assert.equal(res.object, 'list');
    assert.equal(res.data.length, 1);
    assert.equal(res.data[0].embedding.length, 3);
    assert.deepEqual(res.data[0].embedding, [0.1, 0.2, 0.3]);
    assert.equal(res.usage.prompt_tokens, 11);
    const up = await fake.last();
    assert.equal(up.target, '/v1/embeddings');
    assert.equal(up.json?.model, UPSTREAM_MODEL);
    assert.equal(up.json?.input, 'hello');
    assert.equal(up.json?.encoding_format, 'float');
  });

  test('wrong API key: AuthenticationError 401 from the gateway', { timeout: TEST_MS }, async () => {
    const before = await fake.count();
    const err = await rejection(() =>
      client({ apiKey: 'sk-wrong-key-000000' }).chat.completions.create({
        model: ALIAS,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    );
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 401);
    assert.equal(err.type, 'authentication_error');
    assert.equal(err.code, 'invalid_api_key');
    assert.match(err.message, /^401 Incorrect API key provided/);
    assert.equal(err.error?.message, 'Incorrect API key provided.');
    assert.ok(err.requestID, 'the error carries x-request-id');
    assert.equal(await fake.count(), before, 'nothing was forwarded upstream');

    // models.list is authenticated too.
    const err2 = await rejection(() => client({ apiKey: 'sk-wrong-key-000000' }).models.list());
    assert.ok(err2 instanceof OpenAI.AuthenticationError, `got ${err2?.constructor?.name}: ${err2?.message}`);
  });

  test('unknown model: NotFoundError 404 from the gateway', { timeout: TEST_MS }, async () => {
    const before = await fake.count();
    const err = await rejection(() =>
      client().chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    );
    assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'model_not_found');
    assert.equal(err.type, 'invalid_request_error');
    assert.match(err.message, /^404 .*no-such-model/);
    assert.equal(await fake.count(), before, 'nothing was forwarded upstream');
  });

  test('upstream 500: InternalServerError 500 with the upstream error body', { timeout: TEST_MS }, async () => {
    const body = JSON.stringify({
      error: { message: 'upstream exploded', type: 'server_error', param: null, code: 'boom' },
    });
    await fake.script(`push status 500 body=${body}`);
    const before = await fake.count();
    const err = await rejection(() =>
      client({ maxRetries: 0 }).chat.completions.create({ model: ALIAS, messages: [{ role: 'user', content: 'hi' }] }),
    );
    assert.ok(err instanceof OpenAI.InternalServerError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 500);
    assert.equal(err.message, '500 upstream exploded');
    assert.equal(err.code, 'boom');
    assert.equal(err.type, 'server_error');
    assert.equal(await fake.count(), before + 1, 'one upstream attempt (max_attempts 1, SDK maxRetries 0)');

    // The same for a streaming request: the SDK throws from create(), before any chunk.
    await fake.script('push status 500');
    const err2 = await rejection(() =>
      client({ maxRetries: 0 }).chat.completions.create({
        model: ALIAS,
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
      }),
    );
    assert.ok(err2 instanceof OpenAI.InternalServerError, `got ${err2?.constructor?.name}: ${err2?.message}`);
    assert.equal(err2.message, '500 fake error');
  });

  test('upstream 429 with retry-after, SDK maxRetries 0: RateLimitError with the header', { timeout: TEST_MS }, async () => {
    const body = JSON.stringify({
      error: { message: 'Rate limit reached for upstream-model', type: 'requests', param: null, code: 'rate_limit_exceeded' },
    });
    await fake.script(`push status 429 retry_after=7 body=${body}`);
    const before = await fake.count();
    const err = await rejection(() =>
      client({ maxRetries: 0 }).chat.completions.create({ model: ALIAS, messages: [{ role: 'user', content: 'hi' }] }),
    );
    assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 429);
    assert.equal(err.headers.get('retry-after'), '7');
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.match(err.message, /Rate limit reached for upstream-model/);
    assert.equal(await fake.count(), before + 1);
  });

  test('upstream 429 then 200, SDK maxRetries 1: the SDK retries and succeeds', { timeout: TEST_MS }, async () => {
    await fake.script('default ok');
    await fake.script('push status 429 retry_after=0');
    const before = await fake.count();
    const res = await client({ maxRetries: 1 }).chat.completions.create({
      model: ALIAS,
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(res.choices[0].message.content, FAKE_CONTENT);
    assert.equal(await fake.count(), before + 2, 'the 429 and the SDK retry both reached the upstream');
  });
});
