'use strict';
/**
 * What the bridge tests share: the repo's Python, the cloud stand-ins as a process, small
 * fakes of Electron's IPC objects, and a look at a process's descendants.
 *
 * The fakes pass every IPC message through structuredClone, as Electron does, so a handler
 * that returned something IPC cannot carry (a function, an Error's extra fields) fails here.
 */

const { spawn } = require('node:child_process');
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const PYTHON = path.join(REPO_ROOT, '.venv', process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python');

/** The loopback stand-ins of OpenAI, Anthropic and Ollama (`python -m tests.standins`). */
async function startStandins() {
  const child = spawn(PYTHON, ['-m', 'tests.standins'], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (line) => {
    const next = waiting.shift();
    if (next) next(JSON.parse(line));
  });
  const next = () => new Promise((resolve) => waiting.push(resolve));
  const ready = await Promise.race([
    next(),
    new Promise((_r, reject) => setTimeout(() => reject(new Error('stand-ins did not start')), 20000)),
  ]);
  let queue = Promise.resolve();
  return {
    env: ready.env,
    /** Send one command; resolves to its answer (commands are answered in order). */
    command(provider, cmd, extra = {}) {
      const answer = queue.then(() => {
        const reply = next();
        child.stdin.write(`${JSON.stringify({ provider, cmd, ...extra })}\n`);
        return reply;
      });
      queue = answer.catch(() => {});
      return answer;
    },
    script(provider, script) {
      return this.command(provider, 'script', { script });
    },
    stop() {
      child.stdin.end();
      return new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** A temporary data dir for one sidecar. */
function tempDataDir(label) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `miso-bridge-${label}-`));
}

/** Electron's ipcMain, as far as the wiring uses it. */
class FakeIpcMain {
  constructor() {
    this.handlers = new Map();
  }

  handle(channel, handler) {
    if (this.handlers.has(channel)) throw new Error(`Attempted to register a second handler for '${channel}'`);
    this.handlers.set(channel, handler);
  }

  removeHandler(channel) {
    this.handlers.delete(channel);
  }
}

/** A window's webContents: what main sends to, and what can be destroyed. */
class FakeWebContents extends EventEmitter {
  constructor() {
    super();
    this.destroyed = false;
    this.renderer = new EventEmitter();
  }

  send(channel, message) {
    if (this.destroyed) throw new Error('Object has been destroyed');
    const copy = structuredClone(message);
    setImmediate(() => this.renderer.emit(channel, { sender: this }, copy));
  }

  isDestroyed() {
    return this.destroyed;
  }

  destroy() {
    this.destroyed = true;
    this.emit('destroyed');
  }
}

/** ipcRenderer of one window, talking to a FakeIpcMain. */
class FakeIpcRenderer {
  constructor(ipcMain, webContents) {
    this.ipcMain = ipcMain;
    this.webContents = webContents;
  }

  async invoke(channel, ...args) {
    const handler = this.ipcMain.handlers.get(channel);
    if (!handler) throw new Error(`Error invoking remote method '${channel}': No handler registered for '${channel}'`);
    const result = await handler({ sender: this.webContents }, ...structuredClone(args));
    return structuredClone(result);
  }

  on(channel, listener) {
    this.webContents.renderer.on(channel, listener);
    return this;
  }

  removeListener(channel, listener) {
    this.webContents.renderer.removeListener(channel, listener);
    return this;
  }
}

/** contextBridge: exposes into a plain object standing for the renderer's window. */
class FakeContextBridge {
  constructor(window) {
    this.window = window;
  }

  exposeInMainWorld(name, api) {
    this.window[name] = api;
  }
}

/** Process ids of every descendant of `pid` (Linux /proc). */
function descendants(pid) {
  const children = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  const found = [];
  const stack = [pid];
  while (stack.length) {
    for (const child of children.get(stack.pop()) || []) {
      found.push(child);
      stack.push(child);
    }
  }
  return found;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'; // a zombie has exited
  } catch {
    return false;
  }
}

async function waitFor(check, timeoutMs = 10000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The next status event with `state`. */
function nextState(manager, state, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      manager.off('status', listener);
      reject(new Error(`no "${state}" status within ${timeoutMs} ms (now ${manager.state})`));
    }, timeoutMs);
    const listener = (status) => {
      if (status.state === state) {
        clearTimeout(timer);
        manager.off('status', listener);
        resolve(status);
      }
    };
    manager.on('status', listener);
  });
}

module.exports = {
  REPO_ROOT,
  PYTHON,
  startStandins,
  tempDataDir,
  FakeIpcMain,
  FakeWebContents,
  FakeIpcRenderer,
  FakeContextBridge,
  descendants,
  alive,
  waitFor,
  nextState,
};
