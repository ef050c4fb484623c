#!/usr/bin/env node
// Strata from Node.js with @strata/client (this package).
//
//   node examples/example.js [host:port]                 (default 127.0.0.1:50051)
//   node examples/example.js host:port CA CERT KEY       (mutual TLS: PEM file paths)
//
// Runs put / get / write / scan / delete / health against a running
// strata-server and prints what it sees.
'use strict';

const { Client, WriteBatch, StrataError, status } = require('@strata/client');

// The demo flow; returns what it read so tests can check it.
async function main(address = '127.0.0.1:50051', log = console.log, tls = undefined) {
  const db = new Client(address, { timeoutMs: 5000, tls });
  try {
    await db.put('hello', 'world');
    const value = await db.get('hello');
    log(`get hello -> ${value}`);

    await db.write(new WriteBatch().put('fruit/apple', 'red').put('fruit/banana', 'yellow').put('fruit/cherry', 'dark red'));
    const fruits = [];
    for await (const { key, value: v } of db.scan({ start: 'fruit/', end: 'fruit0' })) {
      fruits.push([key.toString(), v.toString()]);
      log(`scan ${key} = ${v}`);
    }

    await db.delete('hello');
    const missing = await db.get('hello');
    log(`get hello after delete -> ${missing}`);

    try {
      await db.put('', 'empty keys are invalid');
    } catch (err) {
      if (!(err instanceof StrataError) || err.code !== status.INVALID_ARGUMENT) throw err;
      log(`put '' -> ${err.codeName}: ${err.details}`);
    }
    const serving = await db.health();
    log(`health -> ${serving ? 'SERVING' : 'not serving'}`);
    return { value, fruits, missing, serving };
  } finally {
    db.close();
  }
}

module.exports = { main };

if (require.main === module) {
  const [address, ca, cert, key] = process.argv.slice(2);
  main(address, console.log, ca ? { ca, cert, key } : undefined).catch((err) => {
    console.error(`error: ${err.message}`);
    process.exit(1);
  });
}
