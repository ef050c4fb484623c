// @strata/client as users get it: `npm pack` here, `npm install` of the
// tarball into a fresh temporary project, then scripts there (CommonJS and
// ESM) use the installed package against a strata-server with mutual TLS, and
// tsc --strict compiles a sample against its index.d.ts. Needs npm and the
// npm registry (for the package's dependencies).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { StrataServer, skipReason, genTestCerts, mtlsFlags } = require('./server.js');

const PACKAGE_ROOT = path.resolve(__dirname, '..');
const FIXTURE = path.join(__dirname, 'pack-fixture');
const NPM_TIMEOUT_MS = 300000;
const RUN_TIMEOUT_MS = 60000;

// Resolves to stdout; rejects with stdout+stderr when the command fails.
function run(file, args, { cwd, env, timeout = RUN_TIMEOUT_MS }) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env: { ...process.env, ...env }, timeout, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`))
        : resolve(stdout)));
  });
}

function tscPath() {
  try {
    return require.resolve('typescript/bin/tsc', { paths: [PACKAGE_ROOT] });
  } catch {
    return null;
  }
}

describe('npm pack tarball installed into a fresh project', { skip: skipReason() }, () => {
  let tmp;
  let project;
  let tarball;
  let server;
  let pki;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-npmpack-'));
    const out = await run('npm', ['pack', '--pack-destination', tmp], { cwd: PACKAGE_ROOT, timeout: NPM_TIMEOUT_MS });
    tarball = path.join(tmp, out.trim().split('\n').pop().trim());
    project = path.join(tmp, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'),
      JSON.stringify({ name: 'strata-pack-smoke', version: '1.0.0', private: true }, null, 2));
    await run('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: project, timeout: NPM_TIMEOUT_MS });
    for (const f of fs.readdirSync(FIXTURE)) fs.copyFileSync(path.join(FIXTURE, f), path.join(project, f));

    server = new StrataServer();
    pki = genTestCerts(path.join(server.dir, 'pki'));
    server.extraArgs = mtlsFlags(pki);
    await server.start();
  });

  after(async () => {
    if (server) await server.cleanup();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the tarball holds the code, the types and the protos, nothing else', async () => {
    const files = (await run('tar', ['tzf', tarball], {})).trim().split('\n').map((f) => f.replace(/^package\//, '')).sort();
    for (const f of ['index.js', 'index.d.ts', 'package.json', 'lib/client.js', 'lib/proto.js',
      'proto/strata/v1/kv.proto', 'proto/grpc/health/v1/health.proto']) {
      assert.ok(files.includes(f), `${f} missing from the tarball: ${files.join(' ')}`);
    }
    const strayed = files.filter((f) => /^(test|examples|scripts|node_modules)\//.test(f));
    assert.deepEqual(strayed, [], 'test/example files in the tarball');
    // Every proto of the checkout went in (prepack), and the copy is gone again (postpack).
    for (const f of fs.readdirSync(path.join(PACKAGE_ROOT, '..', '..', 'proto', 'strata', 'v1'))) {
      assert.ok(files.includes(`proto/strata/v1/${f}`), `proto/strata/v1/${f} missing`);
    }
    assert.equal(fs.existsSync(path.join(PACKAGE_ROOT, 'proto')), false, 'postpack left client/node/proto behind');
  });

  it('a CommonJS script uses the installed package over mutual TLS', async () => {
    const out = await run(process.execPath, ['smoke.cjs'], { cwd: project, env: { STRATA_ADDRESS: server.address, STRATA_PKI: pki } });
    assert.match(out, /cjs ok/);
  });

  it('an ES module imports the installed package and uses it over mutual TLS', async () => {
    const out = await run(process.execPath, ['smoke.mjs'], { cwd: project, env: { STRATA_ADDRESS: server.address, STRATA_PKI: pki } });
    assert.match(out, /esm ok/);
  });

  it('tsc --strict compiles a sample against the installed declarations', { skip: !tscPath() && !process.env.STRATA_TEST_REQUIRE_SERVER && 'typescript not installed (npm ci)' }, async () => {
    const tsc = tscPath();
    assert.ok(tsc, 'typescript (a devDependency) is not installed: run npm ci in client/node');
    await run(process.execPath, [tsc, '-p', project], { cwd: project });
    // The check can fail: a call the declarations forbid is a compile error.
    fs.writeFileSync(path.join(project, 'sample.ts'), `${fs.readFileSync(path.join(project, 'sample.ts'), 'utf8')}
import { Client as C2 } from '@strata/client';
new C2('x').get(42);
`);
    await assert.rejects(run(process.execPath, [tsc, '-p', project], { cwd: project }), /TS2345/);
  });
});
