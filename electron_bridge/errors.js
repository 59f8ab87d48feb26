'use strict';
/**
 * The one error shape of the bridge: a machine-readable `code` (the sidecar's, such as
 * "invalid_request", or ours, such as "timeout"), a `message` for a person, and the HTTP
 * `status` (0 when there was no answer). Plain JavaScript, so the renderer's bundle can use it.
 */
class CodedError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }

  toJSON() {
    return { code: this.code, message: this.message, status: this.status };
  }
}

module.exports = { CodedError };
