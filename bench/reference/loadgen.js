// Load generator for signaling servers: the same design for callapp-signaling
// (protocol v1 over a plain WebSocket) and for the socket.io reference (Engine.IO
// v4 / Socket.IO v4 framing written by hand over the same WebSocket client), so
// that only the server differs between the two runs.
//
// node loadgen.js '<json options>'
//
//   target   "callapp" | "socketio"
//   url      ws://127.0.0.1:PORT/ws  or  ws://127.0.0.1:PORT/socket.io/
//   mode     "relay": P pairs each join a room of their own and ping-pong
//                     messages of `size` bytes through the server; a pong
//                     answers each ping. Either closed loop (`window` pings in
//                     flight per pair: the saturating load) or open loop
//                     (`rate` relayed messages per second in total).
//            "hold":  open `connections` idle connections (`concurrency` at a
//                     time), print {"event":"held"} once all are up, keep them
//                     (answering keepalive pings) until SIGTERM or `seconds`.
//            "stream": (callapp) P pairs; each a sends numbered messages to its
//                     b, `rate` in total per second, for `seconds`, then waits
//                     `drain` s: counts sent, arrived, lost, duplicated, out of
//                     order, errors by code, and the longest time with nothing
//                     arriving (an outage's stall), in ms from {"event":"measuring"}.
//   pairs, window, rate, size, warmup, seconds, connections, concurrency, drain
//   url2     b's server in each pair (default: url): relays cross processes
//   urls     hold: connections spread round-robin over these (default: [url])
//
// Prints one JSON object per line on stdout; the last one is {"event":"done", ...}.
'use strict';

const WebSocket = require('ws');

const opts = Object.assign(
  {
    mode: 'relay',
    pairs: 20,
    window: 4,
    rate: 0,
    size: 1024,
    warmup: 1,
    seconds: 5,
    connections: 1000,
    concurrency: 200,
  },
  JSON.parse(process.argv[2] || '{}'),
);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// -- the two wire formats ----------------------------------------------------

// The generator must cost less per message than the servers it measures, or
// it, not the server, sets the saturated rate (measured: 11 us per relayed
// message with JSON objects and a write per frame, as much as our server's
// 10). So, identically for both targets: relay payloads are built and read as
// strings (only their short header is parsed, never the 1 KiB pad), a
// socket's frames of one event-loop turn go out in one write (corked until
// the next tick), received text is not UTF-8 validated and the mask is
// all-zero (ws then skips the XOR). The servers do the same work as ever.
const WS_OPTIONS = {
  perMessageDeflate: false,
  skipUTF8Validation: true,
  generateMask: (mask) => mask.fill(0),
};

// A relay payload: {"k":KIND,"s":SEQ,"t":SENT_MS,"p":PAD}, as JSON text.
function payload(kind, seq, t, pad) {
  return '{"k":"' + kind + '","s":' + seq + ',"t":' + t + ',"p":"' + pad + '"}';
}

// The header of a relay payload found in a server's frame, or null: the
// frame is then something else (welcome, ready, error, ...).
function readPayload(text) {
  const start = text.indexOf('{"k":"');
  if (start < 0) return null;
  const end = text.indexOf(',"p":"', start);
  if (end < 0) return null;
  return JSON.parse(text.slice(start, end) + '}');
}

class Client {
  constructor(url) {
    this.ws = new WebSocket(url, WS_OPTIONS);
    this.onData = null;
    this.onPayload = null;
    this.onRoomReady = null;
    this._corked = false;
    this._uncork = () => {
      this._corked = false;
      if (this.ws._socket) this.ws._socket.uncork();
    };
    this.ws.on('message', (raw) => {
      const text = raw.toString();
      const head = this.onPayload ? readPayload(text) : null;
      if (head !== null) this.onPayload(head);
      else this._message(text);
    });
  }
  _welcome(what) {
    this.welcomed = new Promise((resolve, reject) => {
      this._welcomed = resolve;
      this.ws.on('error', reject);
      this.ws.on('close', () => reject(new Error(`closed before ${what}`)));
    });
  }
  _write(text) {
    if (!this._corked && this.ws._socket) {
      this._corked = true;
      this.ws._socket.cork();
      process.nextTick(this._uncork);
    }
    this.ws.send(text);
  }
}

// A client object: open(onReady), join(room), send(data), onData(cb), ready promise.
class CallappClient extends Client {
  constructor(url) {
    super(url);
    this._welcome('welcome');
  }
  _message(text) {
    const msg = JSON.parse(text);
    switch (msg.type) {
      case 'welcome':
        this._welcomed();
        break;
      case 'ready':
        if (this.onRoomReady) this.onRoomReady();
        break;
      case 'message':
        if (this.onData) this.onData(msg.data);
        break;
      case 'error':
        stats.errors += 1;
        stats.codes[msg.code] = (stats.codes[msg.code] || 0) + 1;
        break;
      default:
        break;
    }
  }
  join(room) {
    this.ws.send(JSON.stringify({ type: 'join', room }));
  }
  send(data) {
    this._write(JSON.stringify({ type: 'message', data }));
  }
  sendPayload(json) {
    this._write('{"type":"message","data":' + json + '}');
  }
}

class SocketIoClient extends Client {
  constructor(url) {
    super(url + (url.includes('?') ? '&' : '?') + 'EIO=4&transport=websocket');
    this._welcome('connect');
  }
  _message(text) {
    const kind = text[0];
    if (kind === '2') {
      this.ws.send('3'); // Engine.IO ping -> pong
    } else if (kind === '0') {
      this.ws.send('40'); // Engine.IO open -> Socket.IO connect to "/"
    } else if (text.startsWith('40')) {
      this._welcomed();
    } else if (text.startsWith('42')) {
      const [event, ...args] = JSON.parse(text.slice(2));
      if (event === 'message') {
        if (this.onData) this.onData(args[0]);
      } else if (event === 'ready') {
        if (this.onRoomReady) this.onRoomReady();
      } else if (event === 'full') {
        stats.errors += 1;
      }
    } else if (text.startsWith('44')) {
      stats.errors += 1;
    }
  }
  join(room) {
    this.ws.send('42' + JSON.stringify(['join', room]));
  }
  send(data) {
    this._write('42' + JSON.stringify(['message', data]));
  }
  sendPayload(json) {
    this._write('42["message",' + json + ']');
  }
}

function client(url) {
  return opts.target === 'socketio' ? new SocketIoClient(url) : new CallappClient(url);
}

const stats = { errors: 0, codes: {} };

// -- relay ---------------------------------------------------------------------

async function makePair(index) {
  const a = client(opts.url);
  const b = client(opts.url2 || opts.url);
  await Promise.all([a.welcomed, b.welcomed]);
  const room = `bench-${process.pid}-${index}`;
  const ready = Promise.all([
    new Promise((resolve) => (a.onRoomReady = resolve)),
    new Promise((resolve) => (b.onRoomReady = resolve)),
  ]);
  a.join(room);
  // The second join must reach the server after the first (created/joined).
  await new Promise((resolve) => setTimeout(resolve, 5));
  b.join(room);
  await ready;
  return { a, b, seq: 0 };
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

async function relay() {
  const pad = 'x'.repeat(Math.max(0, opts.size - 80));
  const started = performance.now();
  const pairs = [];
  for (let i = 0; i < opts.pairs; i += 25) {
    const batch = [];
    for (let j = i; j < Math.min(opts.pairs, i + 25); j++) batch.push(makePair(j));
    pairs.push(...(await Promise.all(batch)));
  }
  const connectS = (performance.now() - started) / 1000;

  let measuring = false;
  let received = 0;
  let sent = 0;
  const rtts = [];
  const closedLoop = !(opts.rate > 0);

  for (const pair of pairs) {
    pair.b.onPayload = (head) => {
      if (measuring) received += 1;
      pair.b.sendPayload(payload('pong', head.s, head.t, pad));
      if (measuring) sent += 1;
    };
    pair.a.onPayload = (head) => {
      const now = performance.now();
      if (measuring) {
        received += 1;
        rtts.push(now - head.t);
      }
      if (closedLoop) {
        pair.a.sendPayload(payload('ping', ++pair.seq, performance.now(), pad));
        if (measuring) sent += 1;
      }
    };
  }

  let ticker = null;
  if (closedLoop) {
    for (const pair of pairs) {
      for (let w = 0; w < opts.window; w++) {
        pair.a.sendPayload(payload('ping', ++pair.seq, performance.now(), pad));
      }
    }
  } else {
    // Open loop: `rate` relayed messages/s = rate/2 pings/s, spread round-robin.
    const pingRate = opts.rate / 2;
    const t0 = performance.now();
    let pings = 0;
    let next = 0;
    ticker = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * pingRate);
      while (pings < due) {
        const pair = pairs[next];
        next = (next + 1) % pairs.length;
        pair.a.sendPayload(payload('ping', ++pair.seq, performance.now(), pad));
        if (measuring) sent += 1;
        pings += 1;
      }
    }, 1);
  }

  await new Promise((resolve) => setTimeout(resolve, opts.warmup * 1000));
  measuring = true;
  const cpu0 = process.cpuUsage();
  const m0 = performance.now();
  emit({ event: 'measuring' });
  await new Promise((resolve) => setTimeout(resolve, opts.seconds * 1000));
  measuring = false;
  const span = (performance.now() - m0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (ticker) clearInterval(ticker);
  rtts.sort((x, y) => x - y);
  emit({
    event: 'done',
    target: opts.target,
    mode: closedLoop ? 'closed' : 'open',
    pairs: pairs.length,
    window: closedLoop ? opts.window : null,
    offered_rate: closedLoop ? null : opts.rate,
    seconds: span,
    connect_s: connectS,
    messages_received: received,
    messages_sent: sent,
    msgs_per_s: received / span,
    rtt_count: rtts.length,
    rtt_p50_ms: percentile(rtts, 0.5),
    rtt_p99_ms: percentile(rtts, 0.99),
    rtt_max_ms: rtts.length ? rtts[rtts.length - 1] : null,
    loadgen_cpu_pct: ((cpu.user + cpu.system) / 1e6 / span) * 100,
    errors: stats.errors,
    error_codes: stats.codes,
  });
  for (const pair of pairs) {
    pair.a.ws.terminate();
    pair.b.ws.terminate();
  }
  process.exit(0);
}

// -- hold ----------------------------------------------------------------------

const holdUrls = opts.urls || [opts.url];

async function hold() {
  const clients = [];
  let failed = 0;
  let closedEarly = 0;
  let firstError = null;
  const started = performance.now();
  let index = 0;
  async function worker() {
    while (index < opts.connections) {
      index += 1;
      const c = client(holdUrls[index % holdUrls.length]);
      try {
        await c.welcomed;
        clients.push(c);
        c.ws.on('close', () => {
          closedEarly += 1;
        });
      } catch (err) {
        failed += 1;
        if (firstError === null) firstError = String(err && err.message ? err.message : err);
        c.ws.terminate();
      }
    }
  }
  const workers = [];
  for (let i = 0; i < opts.concurrency; i++) workers.push(worker());
  await Promise.all(workers);
  const openS = (performance.now() - started) / 1000;
  emit({ event: 'held', opened: clients.length, failed, open_s: openS, first_error: firstError });
  let stopped = false;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, opts.seconds * 1000);
    process.on('SIGTERM', () => {
      stopped = true;
      clearTimeout(timer);
      resolve();
    });
  });
  const open = clients.filter((c) => c.ws.readyState === WebSocket.OPEN).length;
  emit({
    event: 'done',
    target: opts.target,
    mode: 'hold',
    requested: opts.connections,
    opened: clients.length,
    still_open: open,
    closed_early: closedEarly,
    failed,
    open_s: openS,
    stopped,
    first_error: firstError,
  });
  for (const c of clients) c.ws.terminate();
  process.exit(0);
}

// -- stream ----------------------------------------------------------------------

async function stream() {
  const pad = 'x'.repeat(Math.max(0, opts.size - 80));
  const pairs = [];
  for (let i = 0; i < opts.pairs; i += 25) {
    const batch = [];
    for (let j = i; j < Math.min(opts.pairs, i + 25); j++) batch.push(makePair(j));
    pairs.push(...(await Promise.all(batch)));
  }
  const t0 = performance.now();
  let arrived = 0;
  let duplicated = 0;
  let reordered = 0;
  let last = t0;
  let gap = { ms: 0, from_ms: 0, to_ms: 0 };
  for (const pair of pairs) {
    pair.seen = new Set();
    pair.top = 0;
    pair.b.onData = (data) => {
      const now = performance.now();
      if (now - last > gap.ms) gap = { ms: now - last, from_ms: last - t0, to_ms: now - t0 };
      last = now;
      if (pair.seen.has(data.s)) {
        duplicated += 1;
        return;
      }
      pair.seen.add(data.s);
      arrived += 1;
      if (data.s < pair.top) reordered += 1;
      pair.top = Math.max(pair.top, data.s);
    };
  }
  emit({ event: 'measuring' });
  let sent = 0;
  let next = 0;
  const ticker = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * opts.rate);
    while (sent < due) {
      const pair = pairs[next];
      next = (next + 1) % pairs.length;
      pair.a.send({ s: ++pair.seq, p: pad });
      sent += 1;
    }
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, opts.seconds * 1000));
  clearInterval(ticker);
  const sendingMs = performance.now() - t0;
  await new Promise((resolve) => setTimeout(resolve, (opts.drain || 3) * 1000));
  let lost = 0;
  for (const pair of pairs) lost += pair.seq - pair.seen.size;
  emit({
    event: 'done',
    target: opts.target,
    mode: 'stream',
    pairs: pairs.length,
    rate: opts.rate,
    sending_ms: sendingMs,
    sent,
    arrived,
    lost,
    duplicated,
    reordered,
    longest_gap_ms: gap.ms,
    longest_gap_from_ms: gap.from_ms,
    longest_gap_to_ms: gap.to_ms,
    last_arrival_ms: last - t0,
    errors: stats.errors,
    error_codes: stats.codes,
  });
  for (const pair of pairs) {
    pair.a.ws.terminate();
    pair.b.ws.terminate();
  }
  process.exit(0);
}

const modes = { hold, relay, stream };
(modes[opts.mode] || relay)().catch((err) => {
  emit({ event: 'error', message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
