'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');

const { SseParser } = require('../sse');

function parse(pieces) {
  const events = [];
  const comments = [];
  const retries = [];
  const parser = new SseParser((e) => events.push(e), {
    onComment: (c) => comments.push(c),
    onRetry: (ms) => retries.push(ms),
  });
  for (const piece of pieces) parser.push(piece);
  parser.end();
  return { events, comments, retries, lastEventId: parser.lastEventId };
}

const STREAM = [
  ': stream opened',
  'event: meta',
  'id: 1',
  'data: {"thread_id":"t1"}',
  '',
  'event: token',
  'data: first line',
  'data:second line',
  'data:  two spaces',
  '',
  'retry: 2500',
  'data: plain message',
  '',
  ':heartbeat',
  'event: done',
  'data',
  '',
  '',
].join('\n');

const EXPECTED = [
  { event: 'meta', data: '{"thread_id":"t1"}', id: '1' },
  { event: 'token', data: 'first line\nsecond line\n two spaces', id: '1' },
  { event: 'message', data: 'plain message', id: '1' },
  { event: 'done', data: '', id: '1' },
];

test('events, multi-line data, comments, ids and retry', () => {
  const { events, comments, retries } = parse([STREAM]);
  assert.deepEqual(events, EXPECTED);
  assert.deepEqual(comments, ['stream opened', 'heartbeat']);
  assert.deepEqual(retries, [2500]);
});

test('any split of the stream, and any line ending, gives the same events', () => {
  for (const ending of ['\n', '\r\n', '\r']) {
    const text = STREAM.split('\n').join(ending);
    for (let cut = 0; cut <= text.length; cut += 1) {
      const { events } = parse([text.slice(0, cut), text.slice(cut)]);
      assert.deepEqual(events, EXPECTED, `cut at ${cut} with ${JSON.stringify(ending)}`);
    }
    const { events } = parse([...text]); // one character at a time
    assert.deepEqual(events, EXPECTED);
  }
});

test('an event without its blank line at the end of the stream is dropped', () => {
  const { events } = parse(['data: complete\n\n', 'event: token\ndata: cut off']);
  assert.deepEqual(events.map((e) => e.data), ['complete']);
});

test('a leading byte-order mark, unknown fields and an id with NUL', () => {
  const { events, lastEventId } = parse(['\ufeffid: 7\nfoo: bar\ndata: x\n\nid: a\0b\ndata: y\n\n']);
  assert.deepEqual(events.map((e) => [e.data, e.id]), [['x', '7'], ['y', '7']]);
  assert.equal(lastEventId, '7');
});

test('a blank line with no data dispatches nothing and resets the event name', () => {
  const { events } = parse(['event: token\n\ndata: after\n\n']);
  assert.deepEqual(events, [{ event: 'message', data: 'after', id: '' }]);
});
