'use strict';
/** The main-process side in one import: `require('miso-electron-bridge')`. */

const { SidecarManager, resolveCommand } = require('./sidecar');
const { MisoClient, MisoError, describeErrorBody } = require('./client');
const { registerMisoIpc } = require('./main');
const { CHANNELS } = require('./preload');
const { SseParser } = require('./sse');
const constants = require('./constants');

module.exports = {
  SidecarManager,
  resolveCommand,
  MisoClient,
  MisoError,
  describeErrorBody,
  registerMisoIpc,
  CHANNELS,
  SseParser,
  constants,
};
