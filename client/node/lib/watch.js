// Client.watch: the changes to a key or range as an async iterator that
// survives disconnects and server restarts (docs/revisions.md, "Watch").
//
// The server's guarantees (events in revision order, each exactly once, all
// of a revision in one message unless it is over 1 MiB) hold for one stream.
// Watch keeps them across streams: it remembers how far the stream is
// complete (every message's header.revision says so) and, when the stream
// breaks with UNAVAILABLE, opens a new one from that revision + 1. The
// events of a revision split across messages that arrived before the break
// are remembered by key (a revision changes each key at most once) and not
// delivered again. Same design as client/python/strata_client/watch.py.
'use strict';

const grpc = require('@grpc/grpc-js');
const { StrataError, fromGrpcError } = require('./errors');
const { valueTypeName } = require('./values');

const RESUME_DEFAULTS = Object.freeze({ initialBackoffMs: 100, maxBackoffMs: 5000, multiplier: 2, giveUpAfterMs: null });
const RESUME_KEYS = Object.keys(RESUME_DEFAULTS);

// A strata.v1.KeyValue (loaded with longs as strings) as the client's KeyValue.
function toKeyValue(kv) {
  return {
    key: kv.key,
    value: kv.value,
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
    type: valueTypeName(kv.type),
  };
}

// A strata.v1.Event as a WatchEvent.
// The value's type is valueType (type is the event's: PUT or DELETE).
function toEvent(e) {
  const { type: valueType, ...kv } = toKeyValue(e.kv);
  return {
    type: e.type === 'DELETE' ? 'DELETE' : 'PUT',
    revision: kv.modRevision,
    ...kv,
    valueType,
    prevKv: e.prev_kv ? toKeyValue(e.prev_kv) : null,
  };
}

function progressEvent(revision) {
  return {
    type: 'PROGRESS', revision, key: Buffer.alloc(0), value: Buffer.alloc(0),
    createRevision: 0, modRevision: revision, version: 0, valueType: 'BYTES', prevKv: null,
  };
}

// The resume option of Client.watch -> a policy object, or null (off).
function resumePolicy(resume) {
  if (resume === false || resume === null) return null;
  if (resume === true || resume === undefined) return RESUME_DEFAULTS;
  if (typeof resume !== 'object') throw new TypeError('resume must be true, false or an object');
  for (const k of Object.keys(resume)) {
    if (!RESUME_KEYS.includes(k)) throw new TypeError(`unknown resume option "${k}" (known: ${RESUME_KEYS.join(', ')})`);
  }
  const p = { ...RESUME_DEFAULTS, ...resume };
  if (!(p.initialBackoffMs > 0 && p.initialBackoffMs <= p.maxBackoffMs)) {
    throw new RangeError('resume: need 0 < initialBackoffMs <= maxBackoffMs');
  }
  if (!(p.multiplier >= 1)) throw new RangeError('resume: multiplier must be >= 1');
  if (p.giveUpAfterMs !== null && !(p.giveUpAfterMs >= 0)) throw new RangeError('resume: giveUpAfterMs must be >= 0 or null');
  return Object.freeze(p);
}

// The changes to a key or range, in revision order, each exactly once. Made
// by Client.watch (which resolves once the server has opened the stream).
// Iterate it once with for await; it never ends on its own. cancel() (or
// leaving the loop) cancels the stream and ends the iteration.
class Watch {
  // openCall(request, waitForReady) returns a grpc-js server-streaming call
  // (an async iterable of WatchResponse with cancel()); request is the
  // WatchRequest. With waitForReady the call waits for the channel to
  // connect instead of failing at once while it cannot.
  constructor(openCall, request, { progressNotify, resume }) {
    this._openCall = openCall;
    this._request = request;
    this._progressNotify = Boolean(progressNotify);
    this._policy = resume;
    this._call = null;
    this._responses = null;
    this._cancelled = false;
    this._ended = false; // the stream ended OK without resume
    this._wake = null; // ends a backoff wait early (cancel)
    this._iterated = false;
    this._firstOfStream = true;
    this._pending = [];
    // Every change up to _through has been received (yielded or pending);
    // every change up to _delivered has been yielded.
    const start = Number(request.start_revision);
    this._through = Math.max(start - 1, 0);
    this._delivered = this._through;
    // A revision split across messages whose later part has not arrived:
    // its number and the keys (latin1 strings) received of it.
    this._partialRevision = 0;
    this._partialKeys = new Set();
    this._compacted = null;
    this.compactRevision = null;
    this.resumes = 0;
  }

  // Every change in the range up to this revision has been yielded (progress
  // notifications move it too): watch again from revision + 1 to continue.
  get revision() {
    return this._delivered;
  }

  get cancelled() {
    return this._cancelled;
  }

  // Opens the first stream and reads its first message (sent when the server
  // registered the watch). Rejects with a StrataError if it cannot.
  async _establish(timeoutMs) {
    if (timeoutMs !== null && timeoutMs <= 0) {
      throw new StrataError(grpc.status.DEADLINE_EXCEEDED, 'watch: the deadline expired before the call');
    }
    this._startCall(Number(this._request.start_revision), false);
    const call = this._call;
    let expired = false;
    const timer = timeoutMs === null ? null : setTimeout(() => {
      expired = true;
      call.on('error', () => {});
      call.cancel();
    }, timeoutMs);
    let step;
    try {
      step = await this._responses.next();
    } catch (err) {
      if (expired) throw new StrataError(grpc.status.DEADLINE_EXCEEDED, `watch not opened within ${timeoutMs} ms`, { cause: err });
      throw this._error(err);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
    if (expired) throw new StrataError(grpc.status.DEADLINE_EXCEEDED, `watch not opened within ${timeoutMs} ms`);
    if (step.done) throw new StrataError(grpc.status.UNAVAILABLE, 'watch stream ended before it opened');
    this._absorb(step.value);
    if (this._compacted !== null) await this._fill(); // the status that follows: throws OUT_OF_RANGE
  }

  _startCall(start, waitForReady) {
    const call = this._openCall({ ...this._request, start_revision: start }, waitForReady);
    this._call = call;
    this._responses = call[Symbol.asyncIterator]();
    this._firstOfStream = true;
  }

  // The StrataError for a failed stream (OUT_OF_RANGE carries the compacted
  // revision when a compaction message preceded it).
  _error(err) {
    const e = fromGrpcError(err);
    if (e.code === grpc.status.OUT_OF_RANGE) {
      e.compactRevision = this._compacted;
      this.compactRevision = this._compacted;
    }
    return e;
  }

  // Queues the new events of a message and notes how far it is complete.
  _absorb(resp) {
    const first = this._firstOfStream;
    this._firstOfStream = false;
    const header = Number(resp.header ? resp.header.revision : 0);
    const compaction = Number(resp.compact_revision) > 0;
    if (compaction) this._compacted = Number(resp.compact_revision);
    for (const e of resp.events) {
      const event = toEvent(e);
      const r = event.revision;
      const key = event.key.toString('latin1');
      if (r <= this._through) continue; // delivered before the stream was reopened
      if (r === this._partialRevision && this._partialKeys.has(key)) continue; // received before a break
      if (r > header && !compaction) { // more of revision r follows
        if (r !== this._partialRevision) {
          this._partialRevision = r;
          this._partialKeys = new Set();
        }
        this._partialKeys.add(key);
      }
      this._pending.push(event);
    }
    if (compaction) return; // its header is the compacted revision, not progress
    if (resp.events.length === 0 && !first && this._progressNotify) {
      this._pending.push(progressEvent(Math.max(header, this._through)));
    }
    this._through = Math.max(this._through, header);
    if (this._partialRevision && this._partialRevision <= this._through) {
      this._partialRevision = 0;
      this._partialKeys = new Set();
    }
    if (this._pending.length === 0) this._delivered = this._through;
  }

  // Reads the next message (it may queue nothing); on a break, resumes or throws.
  async _fill() {
    let step = null;
    let err = null;
    try {
      step = await this._responses.next();
    } catch (e) {
      err = e;
    }
    if (this._cancelled) return;
    if (err === null && !step.done) {
      this._absorb(step.value);
      return;
    }
    const code = err ? err.code : null;
    if (err && (code === grpc.status.OUT_OF_RANGE || !this._policy || code !== grpc.status.UNAVAILABLE)) {
      throw this._error(err);
    }
    if (!this._policy) {
      this._ended = true; // ended with OK: not in the contract
      return;
    }
    await this._resume(this._policy, err);
  }

  // Reopens the stream from _through + 1 after a backoff; returns once a new
  // stream delivered its first message (or the watch was cancelled). Each
  // attempt waits for the channel to connect (waitForReady), so it proceeds
  // as soon as the server is back; the backoff paces attempts the server
  // itself refuses (UNAVAILABLE while shutting down); giveUpAfterMs cancels
  // a waiting attempt.
  async _resume(policy, err) {
    const giveUpAt = policy.giveUpAfterMs === null ? null : Date.now() + policy.giveUpAfterMs;
    const state = { gaveUp: false };
    const timer = giveUpAt === null ? null : setTimeout(() => {
      state.gaveUp = true;
      if (this._wake) this._wake();
      if (this._call) {
        this._call.on('error', () => {});
        this._call.cancel();
      }
    }, policy.giveUpAfterMs);
    try {
      await this._attempts(policy, err, state, giveUpAt);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  async _attempts(policy, err, state, giveUpAt) {
    const giveUp = () => (err ? this._error(err) : new StrataError(grpc.status.UNAVAILABLE, 'watch stream ended'));
    let delay = policy.initialBackoffMs;
    for (;;) {
      let pause = delay * (0.5 + Math.random() / 2);
      if (giveUpAt !== null) pause = Math.min(pause, Math.max(giveUpAt - Date.now(), 0));
      await this._sleep(pause);
      if (this._cancelled) return;
      if (state.gaveUp || (giveUpAt !== null && Date.now() >= giveUpAt)) throw giveUp();
      this._startCall(this._through + 1, true);
      let step = null;
      try {
        step = await this._responses.next();
      } catch (e) {
        if (this._cancelled) return;
        if (state.gaveUp) throw giveUp();
        if (e.code !== grpc.status.UNAVAILABLE) throw this._error(e);
        err = e;
      }
      if (this._cancelled) return;
      if (step !== null && !step.done) {
        this.resumes++;
        this._absorb(step.value);
        return;
      }
      if (step !== null) err = null; // ended with OK before its first message
      delay = Math.min(delay * policy.multiplier, policy.maxBackoffMs);
    }
  }

  // Resolves to true if cancel() ended the wait, false after ms.
  _sleep(ms) {
    if (this._cancelled) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this._wake = null;
        resolve(false);
      }, ms);
      this._wake = () => {
        clearTimeout(timer);
        this._wake = null;
        resolve(true);
      };
    });
  }

  // Cancels the stream; the iteration ends (a pending next() resolves done).
  // Idempotent.
  cancel() {
    if (this._cancelled) return;
    this._cancelled = true;
    if (this._wake) this._wake();
    if (this._call) {
      this._call.on('error', () => {}); // the CANCELLED status we cause is expected
      this._call.cancel();
    }
  }

  [Symbol.asyncIterator]() {
    if (this._iterated) throw new TypeError('a Watch can be iterated only once');
    this._iterated = true;
    return this._events();
  }

  async *_events() {
    try {
      for (;;) {
        while (this._pending.length === 0) {
          if (this._cancelled || this._ended) return;
          await this._fill();
        }
        if (this._cancelled) return;
        const event = this._pending.shift();
        if (this._pending.length === 0) {
          this._delivered = this._through;
        } else if (this._pending[0].type === 'PROGRESS') {
          // Queued in order, and a progress message follows only whole
          // revisions: all of event.revision has been yielded.
          this._delivered = Math.max(this._delivered, event.revision);
        } else { // all before the next queued event's revision
          this._delivered = Math.max(this._delivered, this._pending[0].revision - 1);
        }
        yield event;
      }
    } finally {
      this.cancel();
    }
  }
}

module.exports = { Watch, resumePolicy, toKeyValue, RESUME_DEFAULTS };
