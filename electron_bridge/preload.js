'use strict';
/**
 * The preload bridge: what the renderer may do with the sidecar, exposed as `window.misoAPI`.
 *
 * It requires nothing (Electron's sandboxed preloads may only require `electron`), so the
 * app's own preload passes `contextBridge` and `ipcRenderer` in:
 *
 *   const { contextBridge, ipcRenderer } = require('electron');
 *   require('miso-electron-bridge/preload').exposeMisoApi(contextBridge, ipcRenderer);
 *
 * Every call goes over IPC to the main process, which holds the sidecar's address and
 * token; the renderer never sees either. Calls resolve to a result envelope
 * `{ok: true, status, data}` or `{ok: false, status, error: {code, message}}` (an IPC
 * rejection would lose the error code); the facade (`api.js`) turns those into values and
 * FrontendApiErrors.
 */

/** IPC channel names, shared with main.js (which requires them from here). */
const CHANNELS = Object.freeze({
  getStatus: 'miso:get-status',
  getModelCatalog: 'miso:get-model-catalog',
  streamStart: 'miso:stream:start',
  streamCancel: 'miso:stream:cancel',
  streamEvent: 'miso:stream:event',
  request: 'miso:request',
  statusSubscribe: 'miso:status:subscribe',
  statusEvent: 'miso:status:event',
});

let counter = 0;

/** A request id unique in this renderer: stream events are matched to their handlers by it. */
function newRequestId() {
  counter += 1;
  const random = Math.random().toString(36).slice(2, 10);
  return `miso-${Date.now().toString(36)}-${counter}-${random}`;
}

/** Route one stream event to its handlers: `onEvent(name, data)` and `on<Name>(data)`. */
function deliver(handlers, name, data) {
  if (typeof handlers.onEvent === 'function') handlers.onEvent(name, data);
  const specific = handlers[`on${name.charAt(0).toUpperCase()}${name.slice(1)}`];
  if (typeof specific === 'function') specific(data);
}

/**
 * Build the API object (without exposing it): useful for tests and for apps that compose
 * their own bridge.
 * @param {{invoke: Function, on: Function, removeListener: Function}} ipcRenderer
 */
function createMisoApi(ipcRenderer) {
  const streams = new Map(); // requestId -> handlers
  const statusListeners = new Set();

  ipcRenderer.on(CHANNELS.streamEvent, (_event, message) => {
    const handlers = message && streams.get(message.requestId);
    if (!handlers) return;
    if (message.event === 'done' || message.event === 'error') streams.delete(message.requestId);
    deliver(handlers, message.event, message.data);
  });
  ipcRenderer.on(CHANNELS.statusEvent, (_event, status) => {
    for (const listener of statusListeners) listener(status);
  });

  function cancelStream(requestId) {
    return ipcRenderer.invoke(CHANNELS.streamCancel, { requestId });
  }

  return {
    /** The sidecar's state and its /health answer. */
    getStatus: (options = {}) => ipcRenderer.invoke(CHANNELS.getStatus, { timeoutMs: options.timeoutMs }),

    /** GET /models/catalog. */
    getModelCatalog: (options = {}) => ipcRenderer.invoke(CHANNELS.getModelCatalog, { timeoutMs: options.timeoutMs }),

    /**
     * POST /chat/stream. Events go to `handlers.onMeta/onToken/onDone/onError(data)` and
     * `handlers.onEvent(name, data)`; the stream ends with `done` (`cancelled: true` after
     * a cancel) or `error`. Returns at once with `{requestId, cancel}`.
     */
    startStream(payload, handlers = {}) {
      const requestId = newRequestId();
      streams.set(requestId, handlers);
      ipcRenderer.invoke(CHANNELS.streamStart, { requestId, payload }).then(
        (result) => {
          if (result && result.ok === false && streams.delete(requestId)) deliver(handlers, 'error', result.error);
        },
        (err) => {
          if (streams.delete(requestId)) deliver(handlers, 'error', { code: 'ipc_error', message: String(err) });
        },
      );
      return { requestId, cancel: () => cancelStream(requestId) };
    },

    /** Stop a stream: it ends with `done` and `cancelled: true`. */
    cancelStream,

    /** Any other route of the runtime: `request('GET', '/v1/status')`. */
    request: (method, path, body, options = {}) =>
      ipcRenderer.invoke(CHANNELS.request, { method, path, body, timeoutMs: options.timeoutMs }),

    /** Follow the sidecar's status (ready, restarting, failed...); returns an unsubscribe function. */
    onStatus(listener) {
      statusListeners.add(listener);
      if (statusListeners.size === 1) ipcRenderer.invoke(CHANNELS.statusSubscribe, { subscribe: true });
      return () => {
        statusListeners.delete(listener);
        if (statusListeners.size === 0) ipcRenderer.invoke(CHANNELS.statusSubscribe, { subscribe: false });
      };
    },
  };
}

/** Expose the API to the renderer as `window.misoAPI` (or `name`). */
function exposeMisoApi(contextBridge, ipcRenderer, name = 'misoAPI') {
  const api = createMisoApi(ipcRenderer);
  contextBridge.exposeInMainWorld(name, api);
  return api;
}

module.exports = { CHANNELS, createMisoApi, exposeMisoApi };
