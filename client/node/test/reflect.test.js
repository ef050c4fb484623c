// reflect.js (server reflection only, no .proto) against a real strata-server,
// and the grpcurl commands of docs/clients.md replayed through reflection so the
// doc cannot drift from what the server actually exposes.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const { Reflector, KV_SERVICE, main, rpcLine } = require('../examples/reflect.js');
const { StrataServer, skipReason, REPO_ROOT } = require('./server.js');

const DOC = path.join(REPO_ROOT, 'docs', 'clients.md');
const DOC_ADDRESS = '127.0.0.1:50051';
const SESSION_MARKER = '<!-- grpcurl-session';
const EXPECTED_SERVICES = ['grpc.health.v1.Health', 'grpc.reflection.v1alpha.ServerReflection', 'strata.v1.KV'];
const KV_METHODS = ['Get', 'Put', 'Delete', 'Scan', 'Write', 'Watch', 'Compact', 'BatchGet', 'DeleteRange',
  'Txn', 'Commit', 'Increment', 'JsonGet', 'JsonUpdate',
  'LeaseGrant', 'LeaseRevoke', 'LeaseKeepAlive', 'LeaseTimeToLive', 'LeaseLeases', 'Backup',
  'CreateNamespace', 'DeleteNamespace', 'ListNamespaces', 'UpdateNamespace'];
const STREAMING_METHODS = ['Scan', 'Watch', 'Backup']; // server streaming

// ---- parsing docs/clients.md -------------------------------------------------

// Fenced code blocks: [{info, body, start}] (start = offset of the opening fence).
function fencedBlocks(text) {
  const blocks = [];
  const re = /^```([^\n]*)\n([\s\S]*?)^```\s*$/gm;
  let m;
  while ((m = re.exec(text)) !== null) blocks.push({ info: m[1].trim(), body: m[2], start: m.index });
  return blocks;
}

// Splits a shell command line into words: '...' literal, "..." with \" escapes.
function shellWords(line) {
  const words = [];
  let cur = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in: ${line}`);
      cur = (cur || '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) j++;
        s += line[j];
      }
      if (j >= line.length) throw new Error(`unterminated " in: ${line}`);
      cur = (cur || '') + s;
      i = j;
    } else if (/\s/.test(c)) {
      if (cur !== null) words.push(cur);
      cur = null;
    } else if (c === '|' || c === '#') {
      break; // the rest is another command or a comment
    } else {
      cur = (cur || '') + c;
    }
  }
  if (cur !== null) words.push(cur);
  return words;
}

// A grpcurl command line -> {plaintext, data, address, verb, symbol, method, line}.
function parseGrpcurl(line) {
  const words = shellWords(line.replace(/^\$\s*/, '').replace(/\\\s*$/, ''));
  assert.equal(words[0], 'grpcurl', line);
  const cmd = { plaintext: false, data: undefined, address: null, verb: null, symbol: null, method: null, line };
  let i = 1;
  for (; i < words.length && words[i].startsWith('-'); i++) {
    const flag = words[i].replace(/^--?/, '');
    if (flag === 'plaintext') cmd.plaintext = true;
    else if (flag === 'd') cmd.data = words[++i];
    else if (flag === 'max-time' || flag === 'format' || flag === 'H') i++;
    else throw new Error(`unexpected grpcurl flag ${words[i]} in: ${line}`);
  }
  cmd.address = words[i++];
  const rest = words.slice(i);
  if (rest[0] === 'list' || rest[0] === 'describe') {
    cmd.verb = rest[0];
    cmd.symbol = rest[1] || null;
  } else {
    cmd.verb = 'call';
    cmd.method = rest[0];
  }
  return cmd;
}

// Every grpcurl command line in any fenced block of the doc.
function allGrpcurlCommands(text) {
  const cmds = [];
  for (const b of fencedBlocks(text)) {
    for (const line of b.body.split('\n')) {
      if (/^(\$\s*)?grpcurl\s/.test(line.trim())) cmds.push(parseGrpcurl(line.trim()));
    }
  }
  return cmds;
}

// The session block: [{cmd, output}] in order.
function sessionSteps(text) {
  const at = text.indexOf(SESSION_MARKER);
  assert.ok(at >= 0, `docs/clients.md lost its "${SESSION_MARKER}" marker`);
  const block = fencedBlocks(text).find((b) => b.start > at);
  assert.ok(block, 'no fenced block after the grpcurl-session marker');
  const steps = [];
  for (const line of block.body.split('\n')) {
    if (line.startsWith('$ ')) steps.push({ cmd: parseGrpcurl(line), output: [] });
    else if (steps.length) steps[steps.length - 1].output.push(line);
    else if (line.trim()) throw new Error(`text before the first command: ${line}`);
  }
  for (const s of steps) s.output = s.output.join('\n').trim();
  return steps;
}

// grpcurl prints each response as an indented JSON object; split the sequence.
function jsonMessages(output) {
  const msgs = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < output.length; i++) {
    const c = output[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}') {
      if (--depth === 0) msgs.push(JSON.parse(output.slice(start, i + 1)));
    }
  }
  return msgs;
}

// grpc-go's spelling of a status code, as grpcurl prints it ("InvalidArgument").
function goCodeName(code) {
  if (code === grpc.status.CANCELLED) return 'Canceled';
  if (code === grpc.status.OK) return 'OK';
  return grpc.status[code].toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
}

// grpcurl's describe line for a message field.
function fieldLine(field) {
  field.resolve();
  const type = field.resolvedType ? `.${field.resolvedType.fullName.replace(/^\./, '')}` : field.type;
  return `${field.repeated ? 'repeated ' : ''}${type} ${field.name} = ${field.id};`;
}

// ---- tests -------------------------------------------------------------------

describe('docs/clients.md parsing (no server needed)', () => {
  const text = fs.readFileSync(DOC, 'utf8');

  it('finds the grpcurl session and every command uses -plaintext and the default address', () => {
    const steps = sessionSteps(text);
    assert.ok(steps.length >= 10, `only ${steps.length} commands in the session`);
    const verbs = new Set(steps.map((s) => s.cmd.verb));
    assert.deepEqual([...verbs].sort(), ['call', 'describe', 'list']);
    const methods = new Set(steps.filter((s) => s.cmd.verb === 'call').map((s) => s.cmd.method));
    for (const m of ['strata.v1.KV/Put', 'strata.v1.KV/Get', 'strata.v1.KV/Scan', 'grpc.health.v1.Health/Check']) {
      assert.ok(methods.has(m), `the session should show ${m}`);
    }
    for (const c of allGrpcurlCommands(text)) {
      assert.ok(c.plaintext, `missing -plaintext (the server has no TLS): ${c.line}`);
      assert.equal(c.address, DOC_ADDRESS, c.line);
    }
  });

  it('parses shell words and JSON message sequences', () => {
    assert.deepEqual(shellWords(`grpcurl -d '{"a":"b c"}' x "y\\"z" | jq`), ['grpcurl', '-d', '{"a":"b c"}', 'x', 'y"z']);
    assert.deepEqual(jsonMessages('{\n  "a": "}"\n}\n{}\n'), [{ a: '}' }, {}]);
    assert.equal(goCodeName(grpc.status.INVALID_ARGUMENT), 'InvalidArgument');
    assert.equal(goCodeName(grpc.status.DEADLINE_EXCEEDED), 'DeadlineExceeded');
  });
});

describe('reflection against strata-server', { skip: skipReason() }, () => {
  let server;
  let r;

  before(async () => {
    server = new StrataServer();
    await server.start();
    r = new Reflector(server.address);
  });

  after(async () => {
    if (r) r.close();
    if (server) await server.cleanup();
  });

  it('lists exactly the KV, health and reflection services', async () => {
    assert.deepEqual([...(await r.listServices())].sort(), EXPECTED_SERVICES);
  });

  it('describes strata.v1.KV from the server alone', async () => {
    const methods = await r.describeService(KV_SERVICE);
    assert.deepEqual(methods.map((m) => m.name), KV_METHODS);
    const scan = methods.find((m) => m.name === 'Scan');
    assert.deepEqual(scan, {
      name: 'Scan', requestType: 'strata.v1.ScanRequest', responseType: 'strata.v1.ScanResponse',
      requestStream: false, responseStream: true,
    });
    for (const m of methods) {
      assert.equal(m.requestType, `strata.v1.${m.name}Request`);
      assert.equal(m.responseType, `strata.v1.${m.name}Response`);
      assert.equal(m.requestStream, false);
      assert.equal(m.responseStream, STREAMING_METHODS.includes(m.name), m.name);
    }
  });

  it('reflect.js main: Put, Get and Scan through a client built from descriptors', async () => {
    const lines = [];
    const res = await main(server.address, (l) => lines.push(l));
    assert.deepEqual([...res.services].sort(), EXPECTED_SERVICES);
    assert.equal(res.got.found, true);
    assert.equal(res.got.value.toString(), 'no .proto needed');
    assert.deepEqual(res.pairs, [['reflected', 'no .proto needed']]);
    assert.ok(lines.includes('  rpc Scan ( .strata.v1.ScanRequest ) returns ( stream .strata.v1.ScanResponse );'),
      lines.join('\n'));
  });

  it('a reflected client sees INVALID_ARGUMENT for an empty key', async () => {
    const kv = await r.serviceClient(KV_SERVICE);
    const err = await new Promise((resolve) => kv.Put({ key: Buffer.alloc(0), value: Buffer.from('x') },
      (e) => resolve(e)));
    assert.ok(err, 'empty key must be rejected');
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  });

  it('every service and method named by a grpcurl command in the doc exists', async () => {
    const services = await r.listServices();
    for (const c of allGrpcurlCommands(fs.readFileSync(DOC, 'utf8'))) {
      const sym = c.verb === 'call' ? c.method.split('/')[0] : c.symbol;
      if (!sym) continue;
      if (c.verb === 'call' || c.verb === 'list') {
        assert.ok(services.includes(sym), `${c.line}: the server has no service ${sym}`);
      }
      if (c.verb === 'call') {
        const method = c.method.split('/')[1];
        const methods = await r.describeService(sym).catch((e) => {
          throw new Error(`${c.line}: reflection cannot describe ${sym}, so grpcurl cannot call it: ${e.message}`);
        });
        assert.ok(methods.some((m) => m.name === method), `${c.line}: ${sym} has no method ${method}`);
      }
    }
  });
});

describe('grpcurl session of docs/clients.md replayed through reflection', { skip: skipReason() }, () => {
  // A fresh server: the session's outputs assume an empty store.
  let server;
  let r;
  const steps = sessionSteps(fs.readFileSync(DOC, 'utf8'));

  before(async () => {
    server = new StrataServer();
    await server.start();
    r = new Reflector(server.address);
  });

  after(async () => {
    if (r) r.close();
    if (server) await server.cleanup();
  });

  for (const [i, { cmd, output }] of steps.entries()) {
    it(`${i + 1}: ${cmd.line.replace(/^\$ /, '')}`, async () => {
      const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
      if (cmd.verb === 'list' && !cmd.symbol) {
        assert.deepEqual(lines, [...(await r.listServices())].sort());
      } else if (cmd.verb === 'list') {
        const methods = await r.describeService(cmd.symbol);
        assert.deepEqual(lines, methods.map((m) => `${cmd.symbol}.${m.name}`).sort());
      } else if (cmd.verb === 'describe') {
        await checkDescribe(r, cmd.symbol, lines);
      } else {
        await checkCall(r, cmd, output);
      }
    });
  }
});

async function checkDescribe(r, symbol, lines) {
  const root = (await r.descriptorFor(symbol)).getProtobufJsRoot();
  const obj = root.lookup(symbol);
  assert.ok(obj, `reflection does not know ${symbol}`);
  if (obj.methods) {
    assert.equal(lines[0], `${symbol} is a service:`);
    // grpcurl (protoprint with SortElements) prints methods sorted by name.
    const expected = (await r.describeService(symbol)).sort((a, b) => (a.name < b.name ? -1 : 1)).map(rpcLine);
    assert.deepEqual(lines.filter((l) => l.startsWith('rpc ')), expected);
  } else {
    assert.equal(lines[0], `${symbol} is a message:`);
    // grpcurl (protoprint with SortElements) prints fields by tag number.
    const fields = [...obj.fieldsArray].sort((a, b) => a.id - b.id);
    assert.deepEqual(lines.filter((l) => /=\s*\d+;$/.test(l)), fields.map(fieldLine));
  }
}

async function checkCall(r, cmd, output) {
  const request = cmd.data === undefined ? {} : JSON.parse(cmd.data);
  if (output.startsWith('ERROR:')) {
    const code = /Code:\s*(\w+)/.exec(output);
    assert.ok(code, `an ERROR output needs a Code: line:\n${output}`);
    const err = await r.callJson(cmd.method, request).then(() => null, (e) => e);
    assert.ok(err && err.code !== undefined, `${cmd.method} should fail with ${code[1]}`);
    assert.equal(goCodeName(err.code), code[1], err.details);
    const message = /Message:\s*(.*)/.exec(output);
    if (message) assert.equal(err.details, message[1].trim());
    return;
  }
  const responses = await r.callJson(cmd.method, request);
  assert.deepEqual(responses, jsonMessages(output));
}
