'use strict';
/**
 * The sidecar manager's life cycle with the real sidecar: crash and restart, the restart
 * budget, and a stop that leaves no process behind; plus what it does with commands that
 * never get ready or ignore SIGTERM (small Node scripts standing in for a broken build).
 */
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const assert = require('node:assert/strict');

const { SidecarManager } = require('../sidecar');
const { MisoClient } = require('../client');
const h = require('./harness');

function realSidecar(options = {}) {
  return new SidecarManager({
    projectRoot: h.REPO_ROOT,
    dataDir: h.tempDataDir('life'),
    env: { MISO_LOG_LEVEL: 'WARNING' },
    ...options,
  });
}

/** A Node one-liner run as the "sidecar" command. */
function script(source) {
  return [process.execPath, '-e', source];
}

test('a crash is restarted after 1.5 s with a new port and token, and says so', async (t) => {
  const manager = realSidecar();
  t.after(() => manager.stop());
  const statuses = [];
  manager.on('status', (s) => statuses.push(s));
  const first = await manager.start();
  const firstEndpoint = manager.endpoint();
  const client = new MisoClient({ endpoint: () => manager.endpoint() });
  assert.equal((await client.request('GET', '/health')).data.status, 'ok');

  const restarting = h.nextState(manager, 'restarting');
  process.kill(first.pid, 'SIGKILL');
  const crashed = await restarting;
  assert.equal(crashed.restartInMs, 1500);
  assert.equal(crashed.lastExit.signal, 'SIGKILL');
  assert.match(crashed.error, /SIGKILL/);
  await assert.rejects(client.request('GET', '/health'), { code: 'sidecar_unavailable' });

  const crashedAt = Date.now();
  const ready = await h.nextState(manager, 'ready', 30000);
  assert.ok(Date.now() - crashedAt >= 1400, 'restarted before the 1.5 s delay');
  assert.notEqual(ready.pid, first.pid);
  assert.equal(ready.restarts, 1);
  assert.notEqual(manager.endpoint().token, firstEndpoint.token);
  assert.equal((await client.request('GET', '/health')).data.status, 'ok');
  assert.deepEqual(
    statuses.map((s) => s.state),
    ['starting', 'ready', 'restarting', 'starting', 'ready'],
  );
});

test('a sidecar that keeps crashing is given up on', async (t) => {
  const manager = realSidecar({ restartInitialDelayMs: 50, restartMaxCrashes: 1 });
  t.after(() => manager.stop());
  const first = await manager.start();
  process.kill(first.pid, 'SIGKILL');
  const second = await h.nextState(manager, 'ready');
  const failed = h.nextState(manager, 'failed');
  process.kill(second.pid, 'SIGKILL');
  const status = await failed;
  assert.match(status.error, /crashed 2 times/);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(manager.state, 'failed'); // and no restart after all
  assert.equal(status.pid, null);
});

test('stop: SIGTERM, and the sidecar and all its workers are gone', async () => {
  const manager = realSidecar();
  const { pid } = await manager.start();
  await h.waitFor(() => h.descendants(pid).length >= 3, 10000, 'workers started');
  const family = [pid, ...h.descendants(pid)];
  const started = Date.now();
  await manager.stop();
  assert.ok(Date.now() - started < 8000, 'it needed SIGKILL');
  assert.equal(manager.state, 'stopped');
  assert.equal(manager.status.pid, null);
  await h.waitFor(() => family.every((p) => !h.alive(p)), 5000, 'every process gone');
  assert.throws(() => manager.endpoint(), { code: 'sidecar_unavailable' });
});

test('no ready line in time: start fails with ready_timeout and the process is killed', async () => {
  const manager = new SidecarManager({ command: script('setInterval(() => {}, 1000)'), readyTimeoutMs: 500 });
  let pid = null;
  manager.on('status', (s) => {
    if (s.pid) pid = s.pid;
  });
  await assert.rejects(manager.start(), { code: 'ready_timeout' });
  assert.equal(manager.state, 'failed');
  assert.ok(pid);
  await h.waitFor(() => !h.alive(pid), 3000, 'killed');
});

test('a command that exits at once: start fails with its stderr', async () => {
  const manager = new SidecarManager({ command: script('console.error("ModuleNotFoundError: no miso"); process.exit(3)') });
  await assert.rejects(manager.start(), (err) => {
    assert.equal(err.code, 'sidecar_start_failed');
    assert.match(err.message, /exit code 3/);
    assert.match(err.message, /ModuleNotFoundError: no miso/);
    return true;
  });
  const missing = new SidecarManager({ python: '/nonexistent/python' });
  await assert.rejects(missing.start(), { code: 'sidecar_start_failed' });
});

test('stop kills a sidecar that ignores SIGTERM after the grace period', async () => {
  const ready = JSON.stringify({ event: 'ready', port: 9, pid: 0, version: 'x' });
  const manager = new SidecarManager({
    command: script(`process.on('SIGTERM', () => {}); console.log('${ready}'); setInterval(() => {}, 1000)`),
    stopGraceMs: 300,
  });
  const { pid } = await manager.start();
  const started = Date.now();
  await manager.stop();
  assert.ok(Date.now() - started >= 290);
  assert.ok(!h.alive(pid));
  assert.equal(manager.state, 'stopped');
});

test('the sidecar gets the serve arguments, a fresh token and the extra environment', async () => {
  const seenFile = path.join(h.tempDataDir('args'), 'seen.json');
  const ready = JSON.stringify({ event: 'ready', port: 9, pid: 0, version: 'x' });
  const source = "require('fs').writeFileSync(process.env.SEEN, JSON.stringify({ argv: process.argv.slice(1), "
    + 'token: process.env.MISO_AUTH_TOKEN, host: process.env.MISO_HOST, extra: process.env.EXTRA })); '
    + `console.log('${ready}'); setInterval(() => {}, 1000)`;
  const manager = new SidecarManager({
    command: [process.execPath, '-e', source, '--'],
    dataDir: '/tmp/miso-bridge-data',
    env: { EXTRA: 'yes', SEEN: seenFile },
  });
  const tokens = [];
  for (let round = 0; round < 2; round += 1) {
    await manager.start();
    const seen = JSON.parse(fs.readFileSync(seenFile, 'utf8'));
    assert.deepEqual(seen.argv, ['serve', '--port', '0', '--exit-on-stdin-close', '--parent-pid', String(process.pid),
      '--data-dir', '/tmp/miso-bridge-data']);
    assert.equal(seen.token, manager.endpoint().token);
    assert.equal(seen.host, '127.0.0.1');
    assert.equal(seen.extra, 'yes');
    tokens.push(seen.token);
    await manager.stop();
  }
  assert.notEqual(tokens[0], tokens[1]);
});
