'use strict';
/**
 * The renderer's facade: `api.miso.*`, the one way page and component code reaches the
 * sidecar (seeds/000, sections 1 and 6). It wraps `window.misoAPI` (preload.js) so that:
 *
 * - every call has a timeout (`timeoutMs` per call, or the facade's default), passed to the
 *   main process too so the HTTP request is aborted there, not just forgotten here;
 * - every failure is a FrontendApiError with the sidecar's own error `code` (for example
 *   `invalid_request`, `unauthorized`), the HTTP `status` (0 when there was none) and a
 *   `message`; our own codes are `timeout`, `bridge_unavailable`, `sidecar_unavailable`;
 * - a successful call resolves to the answer's body, nothing else.
 */

const DEFAULT_TIMEOUT_MS = 15000;

const { CodedError } = require('./errors');

/** What every failed `api.miso.*` call rejects with: `code`, `message`, `status`. */
class FrontendApiError extends CodedError {}

function unwrap(result) {
  if (result && result.ok === true) return result.data;
  const error = (result && result.error) || {};
  throw new FrontendApiError(error.code || 'unknown_error', error.message || 'the request failed', result?.status || 0);
}

/**
 * @param {object} [bridge] the preload API; by default `window.misoAPI`, looked up at each call
 * @param {{timeoutMs?: number}} [options]
 */
function createApi(bridge, options = {}) {
  const defaultTimeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const getBridge = () => {
    const found = bridge || globalThis.misoAPI || (globalThis.window && globalThis.window.misoAPI);
    if (!found) throw new FrontendApiError('bridge_unavailable', 'window.misoAPI is missing: is the preload script loaded?');
    return found;
  };

  /** Run `call(timeoutMs)` and settle within `timeoutMs`, whatever the bridge does. */
  async function withTimeout(what, timeoutMs, call) {
    const limit = timeoutMs ?? defaultTimeoutMs;
    let timer;
    const timeout = new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new FrontendApiError('timeout', `${what} got no answer within ${limit} ms`)), limit);
    });
    try {
      return unwrap(await Promise.race([call(limit), timeout]));
    } finally {
      clearTimeout(timer);
    }
  }

  const miso = {
    /** The sidecar's state (`ready`, `restarting`...) and its /health answer. */
    getStatus: (opts = {}) => withTimeout('getStatus', opts.timeoutMs, (t) => getBridge().getStatus({ timeoutMs: t })),

    /** The active model and each provider's models. */
    getModelCatalog: (opts = {}) =>
      withTimeout('getModelCatalog', opts.timeoutMs, (t) => getBridge().getModelCatalog({ timeoutMs: t })),

    /**
     * Start a chat stream; `handlers.onMeta/onToken/onDone/onError` get each event's data.
     * Returns `{requestId, cancel}` at once; a failure to start arrives as `onError`.
     */
    startStream: (payload, handlers = {}) => getBridge().startStream(payload, handlers),

    /** Cancel a stream: it ends with `onDone({cancelled: true})`. */
    cancelStream: (requestId, opts = {}) =>
      withTimeout('cancelStream', opts.timeoutMs, () => getBridge().cancelStream(requestId)),

    /** Any route of the runtime, e.g. `request('GET', '/v1/status')`; resolves to the body. */
    request: (method, path, body, opts = {}) =>
      withTimeout(`${method} ${path}`, opts.timeoutMs, (t) => getBridge().request(method, path, body, { timeoutMs: t })),

    /** Follow the sidecar's status; returns an unsubscribe function. */
    onStatus: (listener) => getBridge().onStatus(listener),
  };
  return { miso };
}

/** The facade over `window.misoAPI`, for `import { api } from './api'`. */
const api = createApi();

module.exports = { api, createApi, FrontendApiError, DEFAULT_TIMEOUT_MS };
