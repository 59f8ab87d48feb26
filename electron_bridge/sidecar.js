'use strict';
/**
 * The sidecar manager: starts `miso-runtime serve` from Electron's main process, waits for its
 * ready line, watches it, restarts it after a crash with backoff, and stops it for good.
 *
 * Why each piece:
 * - `--port 0` lets the sidecar pick a free port and say which in its ready line
 *   (`{"event":"ready","port":...,"pid":...,"version":...}`), so two copies of the app never
 *   fight over a port;
 * - a fresh random token per start goes in the sidecar's environment (`MISO_AUTH_TOKEN`) and
 *   stays in this process: the renderer reaches the sidecar only through the IPC wiring;
 * - `--exit-on-stdin-close` and `--parent-pid`: if Electron dies without stopping it, the
 *   sidecar notices its stdin pipe closing and exits, so it never outlives the app;
 * - a crash is restarted 1.5 s later, then with a growing delay; more than a few crashes in
 *   a short window and the manager gives up (`failed`) instead of spinning.
 *
 * Status events (`manager.on('status', s => ...)`) carry `{state, pid, port, version,
 * restarts, lastExit, restartInMs, error}` where state is one of `stopped`, `starting`,
 * `ready`, `restarting`, `failed`, `stopping`.
 */

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const { ENDPOINTS, SIDECAR_DEFAULTS } = require('./constants');
const { MisoError } = require('./client');

/** The Python of the project's virtual environment, if there is one. */
function venvPython(projectRoot) {
  const candidate = process.platform === 'win32'
    ? path.join(projectRoot, '.venv', 'Scripts', 'python.exe')
    : path.join(projectRoot, '.venv', 'bin', 'python');
  return fs.existsSync(candidate) ? candidate : null;
}

/**
 * The command that starts the sidecar, before the serve arguments: `options.command` (an
 * argv array, e.g. a packaged binary), else `options.python` or `$MISO_PYTHON` or the
 * project's `.venv` Python running `-m miso_runtime`, else `python3`.
 */
function resolveCommand(options) {
  if (options.command) {
    if (!Array.isArray(options.command) || options.command.length === 0) {
      throw new TypeError('command must be a non-empty argv array');
    }
    return [...options.command];
  }
  const projectRoot = options.projectRoot || path.resolve(__dirname, '..');
  const python = options.python || process.env.MISO_PYTHON || venvPython(projectRoot)
    || (process.platform === 'win32' ? 'python' : 'python3');
  return [python, '-m', 'miso_runtime'];
}

class SidecarManager extends EventEmitter {
  /**
   * @param {object} [options]
   * @param {string[]} [options.command] argv that runs the runtime's CLI (default: see resolveCommand)
   * @param {string} [options.python] a Python with miso_runtime installed
   * @param {string} [options.projectRoot] where `.venv` is looked for (default: this package's parent)
   * @param {string} [options.dataDir] the sidecar's data dir (`--data-dir`)
   * @param {object} [options.env] extra environment for the sidecar (providers, log level...)
   * @param {string[]} [options.extraArgs] more serve arguments
   * @param {(level: string, message: string) => void} [options.log] where its stderr and our notes go
   * Times, all in ms (defaults in constants.js): readyTimeoutMs, restartInitialDelayMs,
   * restartBackoffFactor, restartMaxDelayMs, restartMaxCrashes, restartWindowMs, stopGraceMs.
   */
  constructor(options = {}) {
    super();
    this.options = { ...SIDECAR_DEFAULTS, ...options };
    this._log = options.log || (() => {});
    this._state = 'stopped';
    this._child = null;
    this._port = null;
    this._version = null;
    this._token = null;
    this._crashes = []; // times of recent crashes, for the restart budget
    this._restarts = 0;
    this._lastExit = null;
    this._error = null;
    this._restartTimer = null;
    this._restartInMs = null;
    this._stderrTail = [];
    this._starting = null;
    this._stopping = null;
  }

  /** A copy of the current status (what status events carry). */
  get status() {
    return {
      state: this._state,
      pid: this._child && this._state !== 'stopped' ? this._child.pid : null,
      port: this._port,
      version: this._version,
      restarts: this._restarts,
      lastExit: this._lastExit,
      restartInMs: this._restartInMs,
      error: this._error,
    };
  }

  get state() {
    return this._state;
  }

  /**
   * Where the running sidecar is and its token, for the main-process client; throws a
   * MisoError "sidecar_unavailable" when it is not ready.
   */
  endpoint() {
    if (this._state !== 'ready' || !this._port) {
      throw new MisoError('sidecar_unavailable', `the sidecar is not ready (${this._state})`, 503);
    }
    return { baseUrl: `http://127.0.0.1:${this._port}`, token: this._token };
  }

  /**
   * Start the sidecar and resolve `status` once it is ready. Rejects (MisoError
   * "sidecar_start_failed" or "ready_timeout") when this first start fails; later crashes
   * are restarted automatically.
   */
  start() {
    if (this._state === 'ready') return Promise.resolve(this.status);
    if (this._starting) return this._starting;
    if (this._stopping) return this._stopping.then(() => this.start());
    if (this._state === 'starting') return this.waitUntilReady(); // a restart under way
    if (this._restartTimer) {
      clearTimeout(this._restartTimer); // asked to start now: no need to wait out the backoff
      this._restartTimer = null;
    }
    this._crashes = [];
    this._error = null;
    this._starting = this._launch(true).finally(() => {
      this._starting = null;
    });
    return this._starting;
  }

  /** Resolve once the sidecar is ready (now, or after a restart in progress). */
  waitUntilReady(timeoutMs = this.options.readyTimeoutMs) {
    if (this._state === 'ready') return Promise.resolve(this.status);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('status', onStatus);
        reject(new MisoError('ready_timeout', `the sidecar was not ready within ${timeoutMs} ms`));
      }, timeoutMs);
      const onStatus = (status) => {
        if (status.state === 'ready' || status.state === 'failed' || status.state === 'stopped') {
          clearTimeout(timer);
          this.off('status', onStatus);
          if (status.state === 'ready') resolve(status);
          else reject(new MisoError('sidecar_unavailable', `the sidecar is ${status.state}`));
        }
      };
      this.on('status', onStatus);
    });
  }

  /**
   * Stop for good: SIGTERM, then SIGKILL after `stopGraceMs`. Resolves when the process has
   * exited (its workers go with it: they watch their parent).
   */
  stop() {
    if (!this._stopping) {
      this._stopping = this._stop().finally(() => {
        this._stopping = null;
      });
    }
    return this._stopping;
  }

  async _stop() {
    if (this._restartTimer) {
      clearTimeout(this._restartTimer);
      this._restartTimer = null;
    }
    const child = this._child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this._child = null;
      this._setState('stopped');
      return;
    }
    this._setState('stopping');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    let timer;
    const graceOver = new Promise((resolve) => {
      timer = setTimeout(() => resolve('grace_over'), this.options.stopGraceMs);
    });
    if ((await Promise.race([exited, graceOver])) === 'grace_over') {
      this._log('warn', `sidecar ${child.pid} did not stop in ${this.options.stopGraceMs} ms; killing it`);
      child.kill('SIGKILL');
      await exited;
    }
    clearTimeout(timer);
    this._child = null;
    this._port = null;
    this._setState('stopped');
  }

  // --- internals ------------------------------------------------------------------------

  _setState(state, extra = {}) {
    this._state = state;
    this._restartInMs = extra.restartInMs ?? null;
    if ('error' in extra) this._error = extra.error;
    this.emit('status', this.status);
  }

  /** Spawn and wait for the ready line. `first`: a failure is final (state "failed"); a
   * restart's failure is left to the crash logic. */
  _launch(first) {
    const argv = resolveCommand(this.options);
    const args = [...argv.slice(1), 'serve', '--port', '0', '--exit-on-stdin-close', '--parent-pid', String(process.pid)];
    if (this.options.dataDir) args.push('--data-dir', this.options.dataDir);
    if (this.options.extraArgs) args.push(...this.options.extraArgs);
    const token = crypto.randomBytes(32).toString('base64url');
    const env = { ...process.env, ...this.options.env, MISO_AUTH_TOKEN: token, MISO_HOST: '127.0.0.1',
      PYTHONUNBUFFERED: '1' };
    this._port = null;
    this._stderrTail = [];
    let child;
    try {
      child = spawn(argv[0], args, { env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    } catch (err) {
      return Promise.reject(this._startFailed(first, `could not run ${argv[0]}: ${err.message}`));
    }
    this._child = child;
    this._token = token;
    this._setState('starting');
    this._watchStderr(child);
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(this.status);
      };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        settle(this._startFailed(first, `no ready line within ${this.options.readyTimeoutMs} ms`, 'ready_timeout'));
      }, this.options.readyTimeoutMs);
      child.once('error', (err) => settle(this._startFailed(first, `could not run ${argv[0]}: ${err.message}`)));
      const lines = readline.createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        const ready = parseReady(line);
        if (!ready) {
          if (line.trim()) this._log('info', `sidecar stdout: ${line}`);
          return;
        }
        if (settled || this._child !== child) return;
        this._port = ready.port;
        this._version = ready.version || null;
        this._setState('ready', { error: null });
        this._log('info', `sidecar ${child.pid} ready on port ${ready.port}`);
        settle(null);
      });
      child.once('exit', (code, signal) => {
        lines.close();
        this._lastExit = { code, signal, stderr: this._stderrTail.slice(-10).join('\n'), at: Date.now() };
        if (this._child !== child) return;
        if (!settled) {
          settle(this._startFailed(first, `the sidecar exited before it was ready (${describeExit(code, signal)})`));
          return;
        }
        if (this._state === 'stopping' || this._state === 'stopped') return;
        this._crashed(code, signal);
      });
    });
  }

  _startFailed(final, message, code = 'sidecar_start_failed') {
    const tail = this._stderrTail.slice(-10).join('\n');
    const error = new MisoError(code, tail ? `${message}\n${tail}` : message);
    if (this._child && this._child.exitCode === null) this._child.kill('SIGKILL');
    this._child = null;
    this._port = null;
    if (final && this._state !== 'stopping') this._setState('failed', { error: error.message });
    return error;
  }

  _crashed(code, signal, why = null) {
    this._child = null;
    this._port = null;
    const now = Date.now();
    this._crashes = this._crashes.filter((t) => now - t < this.options.restartWindowMs);
    this._crashes.push(now);
    const message = why || `the sidecar exited unexpectedly (${describeExit(code, signal)})`;
    this._log('error', message);
    if (this._crashes.length > this.options.restartMaxCrashes) {
      this._setState('failed', { error: `${message}; it crashed ${this._crashes.length} times, no more restarts` });
      return;
    }
    const o = this.options;
    const delay = Math.min(o.restartInitialDelayMs * o.restartBackoffFactor ** (this._crashes.length - 1),
      o.restartMaxDelayMs);
    this._setState('restarting', { restartInMs: delay, error: message });
    this._restartTimer = setTimeout(() => {
      this._restartTimer = null;
      if (this._state !== 'restarting') return;
      this._restarts += 1;
      this._launch(false).catch((err) => {
        // A restart that never got ready counts as another crash.
        this._log('error', err.message);
        if (this._state === 'starting') this._crashed(null, null, err.message);
      });
    }, delay);
  }

  _watchStderr(child) {
    const lines = readline.createInterface({ input: child.stderr });
    lines.on('line', (line) => {
      this._stderrTail.push(line);
      if (this._stderrTail.length > this.options.stderrTailLines) this._stderrTail.shift();
      this._log('debug', line);
    });
  }
}

function parseReady(line) {
  if (!line.startsWith('{')) return null;
  try {
    const parsed = JSON.parse(line);
    return parsed && parsed.event === 'ready' && Number.isInteger(parsed.port) ? parsed : null;
  } catch {
    return null;
  }
}

function describeExit(code, signal) {
  return signal ? `signal ${signal}` : `exit code ${code}`;
}

module.exports = { SidecarManager, resolveCommand, ENDPOINTS };
