'use strict';
/**
 * A Server-Sent Events parser, as the HTML standard's event-stream interpretation defines it.
 *
 * Why our own: the browser's EventSource cannot POST or send headers (the auth token), and
 * Node has none. The parser is pure and incremental: text may arrive in any pieces, a line
 * ending may be CRLF, LF or CR (even a CR at the end of one piece and its LF at the start of
 * the next), `data:` lines accumulate with "\n" between them, a comment (`:`) never
 * dispatches, `id:` persists across events, and an event not ended by a blank line before
 * the stream ends is dropped.
 */

class SseParser {
  /**
   * @param {(event: {event: string, data: string, id: string}) => void} onEvent
   * @param {{onComment?: (text: string) => void, onRetry?: (ms: number) => void}} [options]
   */
  constructor(onEvent, options = {}) {
    this.onEvent = onEvent;
    this.onComment = options.onComment || null;
    this.onRetry = options.onRetry || null;
    this.lastEventId = '';
    this._buffer = '';
    this._data = [];
    this._type = '';
    this._started = false;
    this._skipLf = false;
  }

  /** Feed decoded text. */
  push(text) {
    if (!text) return;
    if (!this._started) {
      this._started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this._skipLf) {
      this._skipLf = false;
      if (text[0] === '\n') text = text.slice(1);
    }
    let buffer = this._buffer + text;
    let start = 0;
    for (;;) {
      const cr = buffer.indexOf('\r', start);
      const lf = buffer.indexOf('\n', start);
      let end;
      if (cr < 0 && lf < 0) break;
      if (cr < 0 || (lf >= 0 && lf < cr)) end = lf;
      else end = cr;
      this._line(buffer.slice(start, end));
      if (buffer[end] === '\r') {
        if (end + 1 === buffer.length) {
          this._skipLf = true; // the LF of this CRLF may come in the next piece
          start = end + 1;
          break;
        }
        start = buffer[end + 1] === '\n' ? end + 2 : end + 1;
      } else {
        start = end + 1;
      }
    }
    this._buffer = buffer.slice(start);
  }

  /** The stream ended: whatever was not ended by a blank line is dropped, as the standard says. */
  end() {
    this._buffer = '';
    this._data = [];
    this._type = '';
  }

  _line(line) {
    if (line === '') {
      this._dispatch();
      return;
    }
    if (line[0] === ':') {
      if (this.onComment) this.onComment(line.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'data':
        this._data.push(value);
        break;
      case 'event':
        this._type = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value) && this.onRetry) this.onRetry(Number(value));
        break;
      default: // unknown fields are ignored
    }
  }

  _dispatch() {
    if (this._data.length === 0) {
      this._type = '';
      return;
    }
    const event = { event: this._type || 'message', data: this._data.join('\n'), id: this.lastEventId };
    this._data = [];
    this._type = '';
    this.onEvent(event);
  }
}

module.exports = { SseParser };
