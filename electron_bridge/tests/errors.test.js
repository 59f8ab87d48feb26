'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');

const { describeErrorBody, MisoError } = require('../client');
const { createApi, FrontendApiError } = require('../api');

test('error codes come out of every contract\'s envelope', () => {
  const cases = [
    [400, { error: { code: 'invalid_request', message: 'message is required' } }, 'invalid_request', 'message is required'],
    [404, { error: { message: 'The model `x` does not exist', type: 'invalid_request_error' } }, 'invalid_request_error', 'The model `x` does not exist'],
    [409, { code: 'session_active', message: 'a session is running' }, 'session_active', 'a session is running'],
    [404, { error: 'session not found' }, 'not_found', 'session not found'],
    [400, 'workspace_path must be absolute\n', 'invalid_request', 'workspace_path must be absolute'],
    [502, '', 'server_error', 'the sidecar answered HTTP 502'],
  ];
  for (const [status, body, code, message] of cases) {
    assert.deepEqual(describeErrorBody(status, body), { code, message }, JSON.stringify(body));
  }
});

test('the facade turns envelopes into values and FrontendApiErrors', async () => {
  const bridge = {
    getStatus: async () => ({ ok: true, status: 200, data: { state: 'ready' } }),
    request: async () => ({ ok: false, status: 409, error: { code: 'branch_conflict', message: 'in use' } }),
    getModelCatalog: () => new Promise(() => {}), // never answers
  };
  const { miso } = createApi(bridge, { timeoutMs: 100 });
  assert.deepEqual(await miso.getStatus(), { state: 'ready' });
  await assert.rejects(miso.request('POST', '/api/spawn', {}), (err) => {
    assert.ok(err instanceof FrontendApiError && err instanceof Error);
    assert.deepEqual([err.code, err.message, err.status], ['branch_conflict', 'in use', 409]);
    return true;
  });
  await assert.rejects(miso.getModelCatalog(), { name: 'FrontendApiError', code: 'timeout' });
  await assert.rejects(createApi(null).miso.getStatus(), { code: 'bridge_unavailable' });
  assert.deepEqual(JSON.parse(JSON.stringify(new MisoError('timeout', 'slow'))), { code: 'timeout', message: 'slow', status: 0 });
});
