// @strata/client against fake cluster nodes (no etcd, no strata-server): a
// fake replica answers FAILED_PRECONDITION "...; the primary is n2 at
// HOST:PORT" like a real one that does not forward (docs/cluster.md; or
// names it in the strata-primary trailer), a fake primary answers; the
// client must follow the named primary once per call and then stick to it
// until it is gone or fenced.
// getRangeMap()/clusterStatus() are decoded against a fake strata.v1.Cluster.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const { Client, StrataError, status } = require('@strata/client');
const { METHODS } = require('../lib/proto');

const isCode = (code) => (err) => err instanceof StrataError && err.code === code;

// A gRPC server on 127.0.0.1 port 0 answering the given unary methods
// ({'strata.v1.KV/Put': (request) => response, or throws {code, details}}),
// recording the full name of every call.
async function fakeNode(handlers) {
  const server = new grpc.Server();
  const calls = [];
  const byService = {};
  for (const [fullName, fn] of Object.entries(handlers)) {
    const [service, method] = fullName.split('/');
    byService[service] = byService[service] || { definition: {}, implementation: {} };
    byService[service].definition[method] = METHODS[fullName];
    byService[service].implementation[method] = (call, callback) => {
      calls.push(fullName);
      try {
        callback(null, fn(call.request));
      } catch (err) {
        callback(err);
      }
    };
  }
  for (const { definition, implementation } of Object.values(byService)) {
    server.addService(definition, implementation);
  }
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { address: `127.0.0.1:${port}`, calls, stop: () => server.forceShutdown() };
}

const header = (revision) => ({ header: { revision } });
const refuseWith = (details) => () => {
  throw { code: status.FAILED_PRECONDITION, details };
};

describe('following a replica to the primary (fake nodes)', () => {
  let primary;
  let replica;

  before(async () => {
    primary = await fakeNode({
      'strata.v1.KV/Put': () => header(7),
      'strata.v1.KV/Get': (req) => ({ ...header(7), found: true, value: Buffer.concat([Buffer.from('v:'), req.key]) }),
      'strata.v1.KV/Delete': () => header(8),
    });
    const refuse = refuseWith(`not the primary of range 0 (epoch 2); the primary is n2 at ${primary.address}`);
    replica = await fakeNode({ 'strata.v1.KV/Put': refuse, 'strata.v1.KV/Get': refuse, 'strata.v1.KV/Delete': refuse });
  });

  after(() => {
    if (primary) primary.stop();
    if (replica) replica.stop();
  });

  const reset = () => {
    primary.calls.length = 0;
    replica.calls.length = 0;
  };

  it('follows the named primary once, then sticks to it (get, put, delete)', async () => {
    reset();
    const db = new Client(replica.address, { timeoutMs: 5000 });
    try {
      assert.equal(db.primary, null);
      assert.equal(await db.put('k', 'v'), 7);
      assert.equal(db.primary, primary.address);
      assert.deepEqual(await db.get('k'), Buffer.from('v:k'));
      assert.equal(await db.delete('k'), 8);
      assert.equal(await db.inNamespace('other').put('k2', 'v'), 7);
    } finally {
      db.close();
    }
    assert.deepEqual(replica.calls, ['strata.v1.KV/Put']);
    assert.deepEqual(primary.calls, ['strata.v1.KV/Put', 'strata.v1.KV/Get', 'strata.v1.KV/Delete', 'strata.v1.KV/Put']);
  });

  it('followPrimary: false rejects with the replica\'s answer', async () => {
    reset();
    const db = new Client(replica.address, { timeoutMs: 5000, followPrimary: false });
    try {
      await assert.rejects(db.put('k', 'v'), (err) => isCode(status.FAILED_PRECONDITION)(err) &&
        /the primary is n2 at/.test(err.details));
      assert.equal(db.primary, null);
    } finally {
      db.close();
    }
    assert.deepEqual(primary.calls, []);
    assert.throws(() => new Client(replica.address, { followPrimary: 'yes' }), TypeError);
  });

  it('prefers the strata-primary trailer to the message', async () => {
    reset();
    // The message names a node that is down; the trailer names the primary.
    const down = await fakeNode({});
    const downAddress = down.address;
    down.stop();
    const trailer = new grpc.Metadata();
    trailer.set('strata-primary', primary.address);
    const node = await fakeNode({
      'strata.v1.KV/Put': () => {
        throw { code: status.FAILED_PRECONDITION, metadata: trailer,
          details: `not the primary of range 0 (epoch 2); the primary is n2 at ${downAddress}` };
      },
    });
    const db = new Client(node.address, { timeoutMs: 5000 });
    try {
      assert.equal(await db.put('k', 'v'), 7);
      assert.equal(db.primary, primary.address);
    } finally {
      db.close();
      node.stop();
    }
    assert.deepEqual(primary.calls, ['strata.v1.KV/Put']);
  });

  it('follows only once per call', async () => {
    reset();
    const second = await fakeNode({ 'strata.v1.KV/Put': refuseWith(`not the primary; the primary is n3 at ${primary.address}`) });
    const hop = await fakeNode({ 'strata.v1.KV/Put': refuseWith(`not the primary; the primary is n2 at ${second.address}`) });
    const db = new Client(hop.address, { timeoutMs: 5000 });
    try {
      await assert.rejects(db.put('k', 'v'), (err) => isCode(status.FAILED_PRECONDITION)(err) && /n3 at/.test(err.details));
    } finally {
      db.close();
      second.stop();
      hop.stop();
    }
    assert.deepEqual(second.calls, ['strata.v1.KV/Put']);
    assert.deepEqual(primary.calls, []);
  });

  it('does not follow other FAILED_PRECONDITION answers', async () => {
    const node = await fakeNode({ 'strata.v1.KV/Put': refuseWith('value is not an INT64') });
    const db = new Client(node.address, { timeoutMs: 5000 });
    try {
      await assert.rejects(db.put('k', 'v'), isCode(status.FAILED_PRECONDITION));
      assert.equal(db.primary, null);
    } finally {
      db.close();
      node.stop();
    }
  });
});

// A Put handler the test switches between answering OK (revision 7),
// FAILED_PRECONDITION naming `primary` in the strata-primary trailer, and
// FAILED_PRECONDITION naming none (`fenced`: an old primary after a failover).
function scriptedPut() {
  const script = { primary: '', fenced: false };
  script.handler = () => {
    if (script.primary !== '') {
      const trailer = new grpc.Metadata();
      trailer.set('strata-primary', script.primary);
      throw { code: status.FAILED_PRECONDITION, metadata: trailer, details: 'not the primary of range 0 (epoch 2)' };
    }
    if (script.fenced) throw { code: status.FAILED_PRECONDITION, details: 'not the primary of range 0 any more' };
    return header(7);
  };
  return script;
}

// Issue 18: a followed primary that dies or is fenced after a failover is
// forgotten; the next call goes to the address the client was given.
describe('forgetting a followed primary that is lost (fake nodes)', () => {
  const nodes = [];
  const scriptedNode = async () => {
    const script = scriptedPut();
    const node = await fakeNode({ 'strata.v1.KV/Put': script.handler });
    nodes.push(node);
    return { script, node };
  };
  after(() => {
    for (const node of nodes) node.stop();
  });

  it('a primary that is gone: the call rejects UNAVAILABLE, the next goes to target', async () => {
    const replica = await scriptedNode();
    const primary = await scriptedNode();
    replica.script.primary = primary.node.address;
    const db = new Client(replica.node.address, { timeoutMs: 5000 });
    try {
      assert.equal(await db.put('k', '1'), 7); // followed
      assert.equal(await db.put('k', '2'), 7); // straight to the primary
      assert.equal(db.primary, primary.node.address);
      primary.node.stop();
      replica.script.primary = ''; // the failover made the replica the primary
      await assert.rejects(db.put('k', '3'), isCode(status.UNAVAILABLE));
      assert.equal(db.primary, null);
      assert.equal(replica.node.calls.length, 1); // the failed call was not retried
      assert.equal(await db.put('k', '4'), 7);
    } finally {
      db.close();
    }
    assert.equal(replica.node.calls.length, 2);
    assert.equal(primary.node.calls.length, 2);
  });

  it('a fenced primary: the call rejects, the next follows the new primary', async () => {
    const replica = await scriptedNode();
    const old = await scriptedNode();
    const fresh = await scriptedNode();
    replica.script.primary = old.node.address;
    const db = new Client(replica.node.address, { timeoutMs: 5000 });
    try {
      assert.equal(await db.put('k', '1'), 7);
      old.script.fenced = true;
      replica.script.primary = fresh.node.address;
      await assert.rejects(db.put('k', '2'), (err) => isCode(status.FAILED_PRECONDITION)(err) &&
        /any more/.test(err.details));
      assert.equal(db.primary, null);
      assert.deepEqual(fresh.node.calls, []); // not retried
      assert.equal(await db.put('k', '3'), 7); // target -> the new primary
      assert.equal(db.primary, fresh.node.address);
      assert.equal(await db.put('k', '4'), 7);
    } finally {
      db.close();
    }
    assert.deepEqual([replica.node.calls.length, old.node.calls.length, fresh.node.calls.length], [2, 2, 2]);
  });

  it('calls in flight on a forgotten primary still complete', async () => {
    // Two concurrent puts on the followed primary: the fenced answer to one
    // must not cancel the other, which that primary answers OK.
    const replica = await scriptedNode();
    let release;
    const gate = new Promise((resolve) => { release = resolve; });
    const server = new grpc.Server();
    server.addService({ Put: METHODS['strata.v1.KV/Put'] }, {
      Put: async (call, callback) => {
        const value = call.request.value.toString();
        if (value === 'fenced') {
          callback({ code: status.FAILED_PRECONDITION, details: 'not the primary of range 0 any more' });
          release();
          return;
        }
        if (value === 'slow') await gate; // answers only after the fenced answer was sent
        setImmediate(() => callback(null, header(9)));
      },
    });
    const port = await new Promise((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
        (err, p) => (err ? reject(err) : resolve(p)));
    });
    replica.script.primary = `127.0.0.1:${port}`;
    const db = new Client(replica.node.address, { timeoutMs: 5000 });
    try {
      assert.equal(await db.put('k', 'first'), 9); // followed
      const slow = db.put('k', 'slow');
      await assert.rejects(db.put('k', 'fenced'), isCode(status.FAILED_PRECONDITION));
      assert.equal(db.primary, null);
      assert.equal(await slow, 9);
    } finally {
      db.close();
      server.forceShutdown();
    }
  });
});

const RANGE_MAP = {
  etcd_revision: 42,
  ranges: [
    { id: 0, start_key: Buffer.alloc(0), end_key: Buffer.from('m'), epoch: 3, primary: 'n2',
      primary_address: '10.0.0.2:50051', replicas: ['n2', 'n1', 'n3'], in_sync: ['n2', 'n1'] },
    { id: 1, start_key: Buffer.from('m'), end_key: Buffer.alloc(0), epoch: 1, primary: 'n1',
      primary_address: '10.0.0.1:50051', replicas: ['n1', 'n2', 'n3'], in_sync: ['n1', 'n2', 'n3'] },
  ],
  nodes: [
    { id: 'n1', address: '10.0.0.1:50051', member: true, live: true },
    { id: 'n3', address: '10.0.0.3:50051', member: true, live: false },
  ],
};

describe('strata.v1.Cluster (fake node)', () => {
  let node;
  let db;

  before(async () => {
    node = await fakeNode({
      'strata.v1.Cluster/GetRangeMap': () => RANGE_MAP,
      'strata.v1.Cluster/GetClusterStatus': () => ({
        ...RANGE_MAP, controller: 'n1', controller_term: 17, replication_factor: 3, min_in_sync: 2,
        replication: [{
          range_id: 0, epoch: 4, primary: 'n1', committed_revision: 90, replicated_revision: 88,
          replicas: [{
            id: 'n3', connected: true, in_sync: true, acked_revision: 88, lag_revisions: 2,
            lag_seconds: 0.25, disk_known: true, disk_free_bytes: 1000, disk_min_free_bytes: 4000,
          }],
        }],
      }),
    });
    db = new Client(node.address, { timeoutMs: 5000 });
  });

  after(() => {
    if (db) db.close();
    if (node) node.stop();
  });

  it('getRangeMap decodes every field', async () => {
    const m = await db.getRangeMap();
    assert.equal(m.etcdRevision, 42);
    assert.deepEqual(m.ranges[0], {
      id: 0, startKey: Buffer.alloc(0), endKey: Buffer.from('m'), epoch: 3, primary: 'n2',
      primaryAddress: '10.0.0.2:50051', replicas: ['n2', 'n1', 'n3'], inSync: ['n2', 'n1'],
    });
    assert.deepEqual(m.ranges[1].startKey, Buffer.from('m'));
    assert.deepEqual(m.nodes, [
      { id: 'n1', address: '10.0.0.1:50051', member: true, live: true },
      { id: 'n3', address: '10.0.0.3:50051', member: true, live: false },
    ]);
  });

  it('clusterStatus decodes the controller and the configuration', async () => {
    const s = await db.clusterStatus();
    assert.equal(s.controller, 'n1');
    assert.equal(s.controllerTerm, 17);
    assert.equal(s.replicationFactor, 3);
    assert.equal(s.minInSync, 2);
    assert.equal(s.etcdRevision, 42);
    assert.equal(s.ranges.length, 2);
    assert.equal(s.nodes[1].live, false);
    assert.deepEqual(s.replication, [{
      rangeId: 0, epoch: 4, primary: 'n1', committedRevision: 90, replicatedRevision: 88,
      replicas: [{
        id: 'n3', connected: true, inSync: true, ackedRevision: 88, lagRevisions: 2,
        lagSeconds: 0.25, diskKnown: true, diskFreeBytes: 1000, diskMinFreeBytes: 4000,
      }],
    }]);
  });

  it('a node without the service rejects with UNIMPLEMENTED', async () => {
    const bare = await fakeNode({});
    const c = new Client(bare.address, { timeoutMs: 5000 });
    try {
      await assert.rejects(c.getRangeMap(), isCode(status.UNIMPLEMENTED));
    } finally {
      c.close();
      bare.stop();
    }
  });
});

// Issue 18: a client asks the node it was given for the range map before its
// first get/put/delete (and again after forgetting a primary) and follows the
// primary of the key's range, so a replica's forwarding hop is not paid.
describe('routing by the range map (fake nodes)', () => {
  const nodes = [];
  // A node answering Put (revision 7) and GetRangeMap with map() (a
  // GetRangeMapResponse, or throws).
  const mapNode = async (map = () => ({ ranges: [] })) => {
    const box = { map };
    const node = await fakeNode({
      'strata.v1.KV/Put': () => header(7),
      'strata.v1.Cluster/GetRangeMap': () => box.map(),
    });
    nodes.push(node);
    return { node, box, count: (name) => node.calls.filter((c) => c === name).length };
  };
  const range = (start, end, address) => ({
    id: 0, start_key: Buffer.from(start), end_key: Buffer.from(end), epoch: 2, primary: 'n', primary_address: address,
  });
  after(() => {
    for (const node of nodes) node.stop();
  });

  it('the first put goes straight to the primary of the key\'s range', async () => {
    const low = await mapNode();
    const high = await mapNode();
    const replica = await mapNode(() => ({
      ranges: [range('', 'm', low.node.address), range('m', '', high.node.address)],
    }));
    const db = new Client(replica.node.address, { timeoutMs: 5000 });
    try {
      assert.equal(await db.put('zebra', '1'), 7);
      assert.equal(db.primary, high.node.address);
      assert.equal(await db.put('apple', '2'), 7); // still the followed primary
    } finally {
      db.close();
    }
    assert.deepEqual(replica.node.calls, ['strata.v1.Cluster/GetRangeMap']);
    assert.equal(high.count('strata.v1.KV/Put'), 2);
    assert.equal(low.count('strata.v1.KV/Put'), 0);
  });

  it('a standalone server: one GetRangeMap (UNIMPLEMENTED), then plain calls', async () => {
    const node = await mapNode(() => {
      throw { code: status.UNIMPLEMENTED, details: 'no cluster' };
    });
    const db = new Client(node.node.address, { timeoutMs: 5000 });
    try {
      assert.equal(await db.put('k', '1'), 7);
      assert.equal(await db.put('k', '2'), 7);
      assert.equal(db.primary, null);
    } finally {
      db.close();
    }
    assert.deepEqual(node.node.calls,
      ['strata.v1.Cluster/GetRangeMap', 'strata.v1.KV/Put', 'strata.v1.KV/Put']);
  });

  it('after the followed primary is forgotten, the map is asked again', async () => {
    const old = await mapNode();
    const fresh = await mapNode();
    let primary = old.node.address;
    const replica = await mapNode(() => ({ ranges: [range('', '', primary)] }));
    const db = new Client(replica.node.address, { timeoutMs: 5000 });
    try {
      assert.equal(await db.put('k', '1'), 7);
      assert.equal(db.primary, old.node.address);
      old.node.stop();
      primary = fresh.node.address;
      await assert.rejects(db.put('k', '2'), isCode(status.UNAVAILABLE)); // not retried
      assert.equal(replica.count('strata.v1.Cluster/GetRangeMap'), 1);
      assert.equal(await db.put('k', '3'), 7);
      assert.equal(db.primary, fresh.node.address);
      assert.equal(await db.put('k', '4'), 7);
    } finally {
      db.close();
    }
    assert.equal(replica.count('strata.v1.Cluster/GetRangeMap'), 2);
    assert.equal(replica.count('strata.v1.KV/Put'), 0);
    assert.equal(fresh.count('strata.v1.KV/Put'), 2);
  });

  it('a namespace client uses only a map of one range; followPrimary: false asks none', async () => {
    const primary = await mapNode();
    let ranges = [range('', 'm', primary.node.address), range('m', '', primary.node.address)];
    const replica = await mapNode(() => ({ ranges }));
    const split = new Client(replica.node.address, { timeoutMs: 5000, namespace: 'tenant' });
    try {
      assert.equal(await split.put('k', '1'), 7);
      assert.equal(split.primary, null);
    } finally {
      split.close();
    }
    ranges = [range('', '', primary.node.address)];
    const single = new Client(replica.node.address, { timeoutMs: 5000, namespace: 'tenant' });
    try {
      assert.equal(await single.put('k', '1'), 7);
      assert.equal(single.primary, primary.node.address);
    } finally {
      single.close();
    }
    const off = new Client(replica.node.address, { timeoutMs: 5000, followPrimary: false });
    try {
      assert.equal(await off.put('k', '1'), 7);
    } finally {
      off.close();
    }
    assert.equal(replica.count('strata.v1.Cluster/GetRangeMap'), 2);
    assert.equal(replica.count('strata.v1.KV/Put'), 2);
    assert.equal(primary.count('strata.v1.KV/Put'), 1);
  });
});
