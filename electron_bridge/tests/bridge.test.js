'use strict';
/**
 * The bridge end to end: the real sidecar started by SidecarManager from the repo's .venv,
 * its providers pointed at the loopback stand-ins, the wiring driven through fake Electron
 * IPC objects, and the renderer's view through preload.js and api.js.
 */
const test = require('node:test');
const assert = require('node:assert/strict');

const { SidecarManager } = require('../sidecar');
const { registerMisoIpc } = require('../main');
const { exposeMisoApi } = require('../preload');
const { createApi, FrontendApiError } = require('../api');
const h = require('./harness');

const TOKENS = ['The', ' answer', ' is', ' 42.'];

let standins;
let manager;
let wiring;
let window;
let webContents;
let api;

test.before(async () => {
  standins = await h.startStandins();
  await standins.script('openai', { models: ['gpt-test', 'gpt-other'] });
  await standins.script('ollama', { tags_delay_s: 1.2 }); // for the timeout test
  manager = new SidecarManager({
    projectRoot: h.REPO_ROOT,
    dataDir: h.tempDataDir('bridge'),
    env: { ...standins.env, MISO_PROVIDER: 'openai', MISO_MODEL: 'gpt-test', MISO_LOG_LEVEL: 'WARNING' },
  });
  const ipcMain = new h.FakeIpcMain();
  webContents = new h.FakeWebContents();
  window = {};
  await manager.start();
  wiring = registerMisoIpc(ipcMain, { manager });
  exposeMisoApi(new h.FakeContextBridge(window), new h.FakeIpcRenderer(ipcMain, webContents));
  api = createApi(window.misoAPI);
});

test.after(async () => {
  if (wiring) wiring.dispose();
  if (manager) await manager.stop();
  if (standins) await standins.stop();
});

/** Run a stream through the preload API; resolves with every event in order. */
function runStream(payload, { cancelAfterTokens } = {}) {
  return new Promise((resolve) => {
    const events = [];
    let handle;
    handle = window.misoAPI.startStream(payload, {
      onEvent(name, data) {
        events.push({ name, data });
        if (name === 'token' && events.filter((e) => e.name === 'token').length === cancelAfterTokens) handle.cancel();
        if (name === 'done' || name === 'error') resolve({ events, requestId: handle.requestId });
      },
    });
  });
}

test('ready handshake: the sidecar told its port, and /health answers there', async () => {
  const status = manager.status;
  assert.equal(status.state, 'ready');
  assert.ok(Number.isInteger(status.port) && status.port > 0);
  assert.ok(h.alive(status.pid));
  const viaPreload = await api.miso.getStatus();
  assert.equal(viaPreload.ready, true);
  assert.equal(viaPreload.pid, status.pid);
  assert.equal(viaPreload.health.status, 'ok');
  assert.equal(viaPreload.health.version, status.version);
  assert.equal(viaPreload.health.model, 'openai:gpt-test');
});

test('a timeout: the call fails with code "timeout", not a hang', async () => {
  // The first catalog request asks Ollama, which the stand-in makes answer in 1.2 s (the
  // sidecar waits up to 1.5 s for it, then caches the list).
  const started = Date.now();
  await assert.rejects(api.miso.getModelCatalog({ timeoutMs: 300 }), (err) => {
    assert.ok(err instanceof FrontendApiError);
    assert.equal(err.code, 'timeout');
    return true;
  });
  assert.ok(Date.now() - started < 1100, 'the timeout did not cut the wait short');
  await standins.script('ollama', {});
  // A generous wait: this call only shows that the bridge recovers. The sidecar may still be
  // importing the providers' client libraries for the first catalog, seconds on a busy machine.
  const later = await api.miso.getModelCatalog({ timeoutMs: 30000 });
  assert.ok(later.providers.ollama.length > 0);
});

test('the token never reaches the renderer', async () => {
  const { token } = manager.endpoint();
  const seen = JSON.stringify([
    await window.misoAPI.getStatus(),
    await window.misoAPI.getModelCatalog(),
    await window.misoAPI.request('GET', '/v1/status'),
    Object.keys(window.misoAPI),
  ]);
  assert.ok(token.length >= 32);
  assert.ok(!seen.includes(token));
});

test('model catalog through the preload', async () => {
  const catalog = await api.miso.getModelCatalog();
  assert.deepEqual(catalog.active, { provider: 'openai', model: 'gpt-test', model_id: 'openai:gpt-test' });
  assert.deepEqual(catalog.providers.openai, ['gpt-other', 'gpt-test']);
  assert.ok(Array.isArray(catalog.providers.anthropic) && Array.isArray(catalog.providers.ollama));
});

test('a full stream: meta, every token in order, done with usage', async () => {
  await standins.script('openai', { tokens: TOKENS, prompt_tokens: 9 });
  const { events } = await runStream({ message: 'What is the answer?', threadId: 'bridge-full' });
  const names = events.map((e) => e.name);
  assert.equal(names[0], 'meta');
  assert.equal(names.at(-1), 'done');
  assert.equal(events[0].data.thread_id, 'bridge-full');
  assert.equal(events.filter((e) => e.name === 'token').map((e) => e.data.delta).join(''), TOKENS.join(''));
  const done = events.at(-1).data;
  assert.equal(done.thread_id, 'bridge-full');
  assert.equal(done.usage.prompt_tokens, 9);
  assert.equal(done.usage.completion_chars, TOKENS.join('').length);
  assert.equal(done.cancelled, undefined);
  await h.waitFor(() => wiring.activeStreams() === 0, 2000, 'stream forgotten');
});

test('cancel mid-stream: done with cancelled, and the sidecar drops its upstream request', async () => {
  await standins.script('openai', { tokens: Array.from({ length: 200 }, (_, i) => `t${i} `), token_delay_s: 0.05 });
  const before = await standins.command('openai', 'stats');
  const { events } = await runStream({ message: 'Count slowly', threadId: 'bridge-cancel' }, { cancelAfterTokens: 3 });
  const done = events.at(-1);
  assert.equal(done.name, 'done');
  assert.equal(done.data.cancelled, true);
  assert.equal(done.data.thread_id, 'bridge-cancel');
  assert.ok(events.filter((e) => e.name === 'token').length < 20);
  const gone = await standins.command('openai', 'wait_for_disconnect', { timeout_s: 5 });
  assert.equal(gone.ok, true, 'the upstream stream was not closed');
  const after = await standins.command('openai', 'stats');
  assert.equal(after.aborted, before.aborted + 1);
  assert.equal(after.active, 0);
  await h.waitFor(() => wiring.activeStreams() === 0, 2000, 'stream forgotten');
});

test('a provider error arrives as an error event with its code', async () => {
  await standins.script('openai', { http_error: 401 });
  const { events } = await runStream({ message: 'hello' });
  const last = events.at(-1);
  assert.equal(last.name, 'error');
  assert.equal(last.data.code, 'provider_auth');
  assert.match(last.data.message, /key|auth/i);
  await standins.script('openai', {});
});

test('bad input: an empty message is the sidecar\'s invalid_request', async () => {
  const { events } = await runStream({ message: '   ' });
  assert.deepEqual(events.map((e) => e.name), ['error']);
  assert.equal(events[0].data.code, 'invalid_request');
  const bad = await window.misoAPI.request('TRACE', '/health');
  assert.equal(bad.ok, false);
  assert.equal(bad.error.code, 'invalid_request');
  const outside = await window.misoAPI.request('GET', '//example.com/health');
  assert.equal(outside.error.code, 'invalid_request');
  const refused = await new Promise((resolve) => window.misoAPI.startStream('hello', { onError: resolve }));
  assert.equal(refused.code, 'invalid_request');
  assert.match(refused.message, /payload/);
});

test('the generic request reaches every contract, errors in their own envelope', async () => {
  const version = await api.miso.request('GET', '/v1/version');
  assert.equal(typeof version.version, 'string');
  const health = await api.miso.request('GET', '/api/healthz');
  assert.equal(health.status, 'ok');
  await assert.rejects(api.miso.request('POST', '/chat/stream', {}), (err) => {
    assert.equal(err.code, 'invalid_request');
    assert.equal(err.status, 400);
    return true;
  });
  await assert.rejects(api.miso.request('GET', '/api/sessions/no-such-session'), (err) => {
    assert.equal(err.status, 404);
    return true;
  });
});

test('a window that closes mid-stream stops its stream', async () => {
  await standins.script('openai', { tokens: Array.from({ length: 200 }, (_, i) => `w${i} `), token_delay_s: 0.05 });
  const ipcMain = new h.FakeIpcMain();
  const other = registerMisoIpc(ipcMain, { manager });
  const contents = new h.FakeWebContents();
  const otherWindow = {};
  exposeMisoApi(new h.FakeContextBridge(otherWindow), new h.FakeIpcRenderer(ipcMain, contents));
  try {
    const before = await standins.command('openai', 'stats');
    await new Promise((resolve) => {
      otherWindow.misoAPI.startStream({ message: 'long' }, { onToken: () => resolve() });
    });
    contents.destroy();
    await h.waitFor(() => other.activeStreams() === 0, 5000, 'stream aborted');
    assert.equal((await standins.command('openai', 'wait_for_disconnect', { timeout_s: 5 })).ok, true);
    assert.equal((await standins.command('openai', 'stats')).aborted, before.aborted + 1);
  } finally {
    other.dispose();
    await standins.script('openai', {});
  }
});
