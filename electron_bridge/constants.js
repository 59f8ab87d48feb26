'use strict';
/**
 * Every tunable of the main-process side in one place. Times are in milliseconds.
 *
 * The restart policy follows the desktop app this bridge serves: the first restart comes
 * 1.5 s after a crash (long enough for the OS to free the port and for a crash loop not to
 * spin), later ones back off, and a sidecar that keeps crashing is given up on rather than
 * restarted forever.
 */

/** Routes of the Miso contract the wiring calls by name (seeds/000, section 3). */
const ENDPOINTS = Object.freeze({
  health: '/health',
  modelsCatalog: '/models/catalog',
  chatStream: '/chat/stream',
});

const SIDECAR_DEFAULTS = Object.freeze({
  /** How long the sidecar may take to print its ready line (first start imports a lot). */
  readyTimeoutMs: 30000,
  /** First restart after a crash. */
  restartInitialDelayMs: 1500,
  /** Each further crash in the window multiplies the delay by this... */
  restartBackoffFactor: 2,
  /** ...up to this. */
  restartMaxDelayMs: 30000,
  /** More crashes than this within restartWindowMs and the manager gives up (state "failed"). */
  restartMaxCrashes: 5,
  restartWindowMs: 120000,
  /** After SIGTERM, how long the sidecar has to shut down before SIGKILL. */
  stopGraceMs: 8000,
  /** Lines of the sidecar's stderr kept to explain a crash. */
  stderrTailLines: 40,
});

const CLIENT_DEFAULTS = Object.freeze({
  /** A plain request that takes longer than this is aborted (code "timeout"). */
  requestTimeoutMs: 15000,
  /** A stream whose response headers do not arrive within this is aborted. */
  streamConnectTimeoutMs: 15000,
});

/** Methods the renderer may use through the generic request channel. */
const ALLOWED_METHODS = Object.freeze(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

module.exports = { ENDPOINTS, SIDECAR_DEFAULTS, CLIENT_DEFAULTS, ALLOWED_METHODS };
