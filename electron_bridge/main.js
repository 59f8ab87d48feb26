'use strict';
/**
 * The main-process wiring: IPC handlers that let the renderer (through preload.js) reach the
 * sidecar without ever holding its token.
 *
 * It takes `ipcMain` as an argument (Electron's, or any object with `handle` and
 * `removeHandler`), so it runs and is tested without Electron. Handlers answer with result
 * envelopes (`{ok, status, data}` / `{ok: false, status, error: {code, message}}`): an
 * exception thrown across IPC reaches the renderer as a bare message, without its code.
 */

const { CHANNELS } = require('./preload');
const { ALLOWED_METHODS, ENDPOINTS } = require('./constants');
const { MisoClient, MisoError } = require('./client');

function success(result) {
  return { ok: true, status: result.status, data: result.data };
}

function failure(err) {
  const error = err instanceof MisoError ? err : new MisoError('internal_error', String(err && err.message ? err.message : err));
  return { ok: false, status: error.status || 0, error: { code: error.code, message: error.message } };
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Register the handlers.
 * @param {{handle: Function, removeHandler: Function}} ipcMain
 * @param {{manager: import('./sidecar').SidecarManager, client?: MisoClient}} options
 * @returns {{dispose: () => void, activeStreams: () => number}}
 */
function registerMisoIpc(ipcMain, { manager, client } = {}) {
  if (!manager) throw new TypeError('registerMisoIpc needs the sidecar manager');
  const misoClient = client || new MisoClient({ endpoint: () => manager.endpoint() });
  const streams = new Map(); // requestId -> AbortController
  const statusSubscribers = new Set();

  const onStatus = (status) => {
    for (const sender of statusSubscribers) {
      if (isDestroyed(sender)) statusSubscribers.delete(sender);
      else sender.send(CHANNELS.statusEvent, status);
    }
  };
  manager.on('status', onStatus);

  const handlers = {
    async [CHANNELS.getStatus](_event, options = {}) {
      const status = manager.status;
      let health = null;
      let healthError = null;
      if (status.state === 'ready') {
        try {
          health = (await misoClient.request('GET', ENDPOINTS.health, null, { timeoutMs: options?.timeoutMs })).data;
        } catch (err) {
          healthError = failure(err).error;
        }
      }
      return { ok: true, status: 200, data: { ...status, ready: status.state === 'ready' && health !== null, health, healthError } };
    },

    async [CHANNELS.getModelCatalog](_event, options = {}) {
      try {
        return success(await misoClient.request('GET', ENDPOINTS.modelsCatalog, null, { timeoutMs: options?.timeoutMs }));
      } catch (err) {
        return failure(err);
      }
    },

    async [CHANNELS.request](_event, message) {
      if (!isObject(message)) return failure(new MisoError('invalid_request', 'request needs {method, path}', 400));
      const method = String(message.method || '').toUpperCase();
      if (!ALLOWED_METHODS.includes(method)) {
        return failure(new MisoError('invalid_request', `method must be one of ${ALLOWED_METHODS.join(', ')}`, 400));
      }
      try {
        return success(await misoClient.request(method, message.path, message.body, { timeoutMs: message.timeoutMs }));
      } catch (err) {
        return failure(err);
      }
    },

    async [CHANNELS.streamStart](event, message) {
      if (!isObject(message) || typeof message.requestId !== 'string' || !message.requestId) {
        return failure(new MisoError('invalid_request', 'stream start needs {requestId, payload}', 400));
      }
      if (!isObject(message.payload)) return failure(new MisoError('invalid_request', 'payload must be an object', 400));
      const { requestId, payload } = message;
      if (streams.has(requestId)) return failure(new MisoError('conflict', `stream ${requestId} is already running`, 409));
      const sender = event.sender;
      const send = (name, data) => {
        if (!isDestroyed(sender)) sender.send(CHANNELS.streamEvent, { requestId, event: name, data });
      };
      const controller = new AbortController();
      streams.set(requestId, controller);
      const abortOnClose = () => controller.abort();
      if (sender && typeof sender.once === 'function') sender.once('destroyed', abortOnClose);
      misoClient
        .stream(ENDPOINTS.chatStream, payload, {
          signal: controller.signal,
          onEvent: ({ event: name, data }) => send(name, data),
        })
        .then(({ endedBy }) => {
          if (endedBy !== 'done' && endedBy !== 'error') {
            send('error', { code: 'stream_interrupted', message: 'the stream ended without done or error' });
          }
        })
        .catch((err) => send('error', failure(err).error))
        .finally(() => {
          streams.delete(requestId);
          if (sender && typeof sender.removeListener === 'function') sender.removeListener('destroyed', abortOnClose);
        });
      return { ok: true, status: 200, data: { requestId } };
    },

    async [CHANNELS.streamCancel](_event, message) {
      const requestId = isObject(message) ? message.requestId : message;
      const controller = streams.get(requestId);
      if (controller) controller.abort();
      return { ok: true, status: 200, data: { cancelled: Boolean(controller) } };
    },

    async [CHANNELS.statusSubscribe](event, message) {
      if (isObject(message) && message.subscribe === false) statusSubscribers.delete(event.sender);
      else statusSubscribers.add(event.sender);
      return { ok: true, status: 200, data: manager.status };
    },
  };

  for (const [channel, handler] of Object.entries(handlers)) ipcMain.handle(channel, handler);

  return {
    activeStreams: () => streams.size,
    dispose() {
      for (const channel of Object.keys(handlers)) ipcMain.removeHandler(channel);
      for (const controller of streams.values()) controller.abort();
      manager.off('status', onStatus);
      statusSubscribers.clear();
    },
  };
}

function isDestroyed(sender) {
  return !sender || (typeof sender.isDestroyed === 'function' && sender.isDestroyed());
}

module.exports = { registerMisoIpc, CHANNELS };
