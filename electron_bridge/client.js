'use strict';
/**
 * The main process's HTTP client of the sidecar: requests with the auth header and a timeout,
 * and SSE streams over fetch that a caller cancels with an AbortController.
 *
 * The token is read from the sidecar manager at each call (a restarted sidecar has a new
 * port and a new token) and never leaves this process.
 */

const { CLIENT_DEFAULTS } = require('./constants');
const { CodedError } = require('./errors');
const { SseParser } = require('./sse');

/** A failed call in the main process: the sidecar's error code, or ours (timeout, ...). */
class MisoError extends CodedError {}

const STATUS_CODES = { 400: 'invalid_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found',
  405: 'method_not_allowed', 409: 'conflict', 410: 'gone', 413: 'payload_too_large', 422: 'invalid_request',
  429: 'rate_limited', 503: 'unavailable' };

/**
 * The code and message of an error answer, whatever contract's envelope it is in: Miso and
 * OpenAI `{"error": {"code"|"type", "message"}}`, skill-daemon `{"code", "message"}`, schmux
 * `{"error": "..."}`, or plain text.
 */
function describeErrorBody(status, body) {
  const fallback = STATUS_CODES[status] || (status >= 500 ? 'server_error' : 'http_error');
  if (body && typeof body === 'object') {
    const inner = body.error;
    if (inner && typeof inner === 'object') {
      return { code: String(inner.code || inner.type || fallback), message: String(inner.message || fallback) };
    }
    if (typeof inner === 'string') return { code: fallback, message: inner };
    if (typeof body.message === 'string') return { code: String(body.code || fallback), message: body.message };
    if (typeof body.detail === 'string') return { code: fallback, message: body.detail };
  }
  if (typeof body === 'string' && body.trim()) return { code: fallback, message: body.trim() };
  return { code: fallback, message: `the sidecar answered HTTP ${status}` };
}

async function readBody(response) {
  const text = await response.text();
  const type = response.headers.get('content-type') || '';
  if (type.includes('json') && text) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** One signal that fires on the caller's abort or after `timeoutMs`, and says which. */
function deadline(signal, timeoutMs) {
  const controller = new AbortController();
  const state = { timedOut: false };
  const onAbort = () => controller.abort(signal.reason);
  if (signal) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  const timer = timeoutMs > 0 ? setTimeout(() => {
    state.timedOut = true;
    controller.abort(new MisoError('timeout', `no answer within ${timeoutMs} ms`));
  }, timeoutMs) : null;
  const stopTimer = () => {
    if (timer) clearTimeout(timer);
  };
  const clear = () => {
    stopTimer();
    if (signal) signal.removeEventListener('abort', onAbort);
  };
  return { signal: controller.signal, state, stopTimer, clear };
}

class MisoClient {
  /**
   * @param {{endpoint: () => {baseUrl: string, token: string}, fetch?: typeof fetch,
   *          requestTimeoutMs?: number, streamConnectTimeoutMs?: number}} options
   *   `endpoint` gives the running sidecar's address and token, or throws a MisoError
   *   ("sidecar_unavailable") when there is none; SidecarManager.endpoint does.
   */
  constructor(options) {
    this._endpoint = options.endpoint;
    this._fetch = options.fetch || globalThis.fetch;
    this.requestTimeoutMs = options.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs;
    this.streamConnectTimeoutMs = options.streamConnectTimeoutMs ?? CLIENT_DEFAULTS.streamConnectTimeoutMs;
  }

  /** The absolute URL of a path on the sidecar, refusing anything that would leave it. */
  url(path) {
    const { baseUrl } = this._endpoint();
    if (typeof path !== 'string' || !path.startsWith('/') || path.startsWith('//')) {
      throw new MisoError('invalid_request', 'path must be a path on the sidecar, starting with one "/"', 400);
    }
    const url = new URL(path, baseUrl);
    if (url.origin !== new URL(baseUrl).origin) {
      throw new MisoError('invalid_request', 'path must stay on the sidecar', 400);
    }
    return url;
  }

  _init(method, body, signal, extraHeaders) {
    const { token } = this._endpoint();
    const headers = { 'x-miso-auth': token, ...extraHeaders };
    const init = { method, headers, signal };
    if (body !== undefined && body !== null && method !== 'GET' && method !== 'HEAD') {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return init;
  }

  /**
   * Call a route. Resolves `{status, data}` (data parsed from JSON when the answer is JSON);
   * rejects with a MisoError: the sidecar's code for a 4xx/5xx, "timeout", or
   * "sidecar_unavailable" when it cannot be reached.
   */
  async request(method, path, body, { timeoutMs, signal, headers } = {}) {
    const url = this.url(path);
    const limit = deadline(signal, timeoutMs ?? this.requestTimeoutMs);
    try {
      const response = await this._fetch(url, this._init(method.toUpperCase(), body, limit.signal, headers));
      const data = await readBody(response);
      if (!response.ok) {
        const { code, message } = describeErrorBody(response.status, data);
        throw new MisoError(code, message, response.status);
      }
      return { status: response.status, data };
    } catch (err) {
      throw transportError(err, limit.state.timedOut, signal);
    } finally {
      limit.clear();
    }
  }

  /**
   * POST to an SSE route and hand each event to `onEvent({event, data, id})`, `data` parsed
   * from JSON when it is JSON. Resolves `{endedBy, cancelled}`: `endedBy` is the name of the
   * last event ("done", "error") or "" when the stream ended without one. Aborting `signal`
   * cancels: the connection closes (the sidecar then stops its provider request) and a last
   * `done` event `{thread_id, cancelled: true}` is emitted. Rejects with a MisoError for an
   * error answer, "timeout" when the headers do not come in time, "stream_interrupted" when
   * the connection breaks mid-stream.
   */
  async stream(path, body, { onEvent, signal, connectTimeoutMs } = {}) {
    const url = this.url(path);
    const limit = deadline(signal, connectTimeoutMs ?? this.streamConnectTimeoutMs);
    let last = '';
    let threadId = null;
    const cancelled = () => {
      limit.clear();
      const data = { thread_id: threadId, cancelled: true, finished_at: Date.now() };
      onEvent({ event: 'done', data, id: '' });
      return { endedBy: 'done', cancelled: true };
    };
    let response;
    try {
      response = await this._fetch(url, this._init('POST', body, limit.signal, { accept: 'text/event-stream' }));
      if (!response.ok) {
        const { code, message } = describeErrorBody(response.status, await readBody(response));
        throw new MisoError(code, message, response.status);
      }
    } catch (err) {
      limit.clear();
      if (signal && signal.aborted && !limit.state.timedOut) return cancelled();
      throw transportError(err, limit.state.timedOut, signal);
    }
    limit.stopTimer(); // connected: from here only the caller's signal ends the stream
    const parser = new SseParser((event) => {
      last = event.event;
      let data = event.data;
      try {
        data = JSON.parse(event.data);
      } catch {
        // not JSON: handed over as text
      }
      if (data && typeof data === 'object' && typeof data.thread_id === 'string') threadId = data.thread_id;
      onEvent({ event: event.event, data, id: event.id });
    });
    const decoder = new TextDecoder();
    try {
      for await (const piece of response.body) {
        parser.push(decoder.decode(piece, { stream: true }));
      }
      parser.push(decoder.decode());
      parser.end();
      return { endedBy: last, cancelled: false };
    } catch (err) {
      if (signal && signal.aborted) return cancelled();
      throw new MisoError('stream_interrupted', `the stream broke off: ${err.message}`, 0);
    } finally {
      limit.clear();
    }
  }
}

function transportError(err, timedOut, signal) {
  if (err instanceof MisoError) return err;
  if (timedOut) return new MisoError('timeout', 'the sidecar did not answer in time', 0);
  if (signal && signal.aborted) return new MisoError('cancelled', 'the request was cancelled', 0);
  const cause = err && err.cause && err.cause.code ? ` (${err.cause.code})` : '';
  return new MisoError('sidecar_unavailable', `the sidecar could not be reached${cause}`, 0);
}

module.exports = { MisoClient, MisoError, describeErrorBody };
