#!/usr/bin/env node
// npm pack hooks: ship the .proto files inside the package without keeping a
// second copy in git.
//
//   node scripts/copy-protos.js          (prepack)  ../../proto -> ./proto
//   node scripts/copy-protos.js --clean  (postpack) removes ./proto again
//
// Copies proto/strata/v1/*.proto and proto/grpc/health/v1/health.proto of the
// Strata checkout this package sits in (client/node). Outside a checkout (a
// package unpacked from its tarball) ./proto is the shipped copy: it is kept
// as is, and --clean leaves it alone.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const PACKAGE_ROOT = path.resolve(__dirname, '..');
const SOURCE = path.resolve(PACKAGE_ROOT, '..', '..', 'proto');
const DEST = path.join(PACKAGE_ROOT, 'proto');
const FILES_IN = { 'strata/v1': (f) => f.endsWith('.proto'), 'grpc/health/v1': (f) => f === 'health.proto' };

function inCheckout() {
  return fs.existsSync(path.join(SOURCE, 'strata', 'v1', 'kv.proto'));
}

function copy() {
  if (!inCheckout()) {
    if (fs.existsSync(path.join(DEST, 'strata', 'v1', 'kv.proto'))) return; // an unpacked package
    throw new Error(`copy-protos: neither ${SOURCE} (a Strata checkout) nor ${DEST} has strata/v1/kv.proto`);
  }
  fs.rmSync(DEST, { recursive: true, force: true });
  let n = 0;
  for (const [dir, wanted] of Object.entries(FILES_IN)) {
    fs.mkdirSync(path.join(DEST, dir), { recursive: true });
    for (const f of fs.readdirSync(path.join(SOURCE, dir)).filter(wanted).sort()) {
      fs.copyFileSync(path.join(SOURCE, dir, f), path.join(DEST, dir, f));
      n++;
    }
  }
  console.error(`copy-protos: copied ${n} .proto files into ${path.relative(process.cwd(), DEST) || '.'}`);
}

function clean() {
  if (inCheckout()) fs.rmSync(DEST, { recursive: true, force: true });
}

if (process.argv.includes('--clean')) clean();
else copy();
