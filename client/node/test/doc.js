// Runs the JavaScript examples of docs/clients.md as written (address and
// certificate paths replaced), so the doc cannot drift from the package.
'use strict';

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { REPO_ROOT } = require('./server.js');

const DOC = path.join(REPO_ROOT, 'docs', 'clients.md');
const PACKAGE_ROOT = path.resolve(__dirname, '..');
const DOC_ADDRESS = '127.0.0.1:50051';
const DOC_PKI = '/etc/strata/pki/';
const RUN_TIMEOUT_MS = 30000;

// The ```js blocks of the "## Node.js" section of docs/clients.md.
function nodeBlocks() {
  const section = fs.readFileSync(DOC, 'utf8').split('\n## Node.js')[1].split('\n## ')[0];
  return section.split('```js\n').slice(1).map((b) => b.split('\n```')[0]);
}

// Runs code in a child node whose require() resolves '@strata/client' to this
// package (cwd = client/node). Resolves to its stdout; rejects on exit != 0.
function runExample(code, { address, pki }) {
  assert.ok(code.includes(DOC_ADDRESS), 'the doc example should dial 127.0.0.1:50051');
  let src = code.split(DOC_ADDRESS).join(address);
  if (pki) {
    assert.ok(code.includes(DOC_PKI), `the TLS example should read its files from ${DOC_PKI}`);
    src = src.split(DOC_PKI).join(`${pki}/`);
  }
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', src], { cwd: PACKAGE_ROOT, timeout: RUN_TIMEOUT_MS },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

module.exports = { nodeBlocks, runExample };
