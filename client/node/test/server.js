// Starts and stops a real strata-server for the Node tests.
//
// The binary is $STRATA_SERVER, or build/server/strata-server under the
// repository root. It listens on 127.0.0.1 port 0 and prints one stdout line
// "strata-server listening on 127.0.0.1:PORT" when ready.
'use strict';

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const START_TIMEOUT_MS = 30000;
const STOP_TIMEOUT_MS = 15000;

function serverBinary() {
  return process.env.STRATA_SERVER || path.join(REPO_ROOT, 'build', 'server', 'strata-server');
}

// A reason to skip (a string) when the binary is missing, else false. With
// STRATA_TEST_REQUIRE_SERVER set (scripts/test-clients.sh) a missing binary throws.
function skipReason() {
  if (fs.existsSync(serverBinary())) return false;
  const why = `strata-server not found at ${serverBinary()}: build it or set STRATA_SERVER=/path/to/strata-server`;
  if (process.env.STRATA_TEST_REQUIRE_SERVER) throw new Error(why);
  return why;
}

// Writes a test CA, server and client certificates into dir with
// scripts/gen-test-certs.sh (openssl); the server certificate is for localhost
// and 127.0.0.1. Returns dir.
function genTestCerts(dir) {
  execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'gen-test-certs.sh'), dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  return dir;
}

// Server flags for TLS that requires client certificates signed by pki's CA.
function mtlsFlags(pki) {
  return [`--tls_cert=${pki}/server.crt`, `--tls_key=${pki}/server.key`, `--tls_client_ca=${pki}/ca.crt`];
}

class StrataServer {
  // extraArgs: more server flags, e.g. mtlsFlags(pki).
  constructor(extraArgs = []) {
    this.extraArgs = extraArgs;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-nodetest-'));
    this.dataDir = path.join(this.dir, 'data');
    fs.mkdirSync(this.dataDir);
    this.proc = null;
    this.address = null;
    this.stderr = '';
  }

  // Resolves to "127.0.0.1:PORT" once the server announced it.
  start() {
    // Metrics on a free port: the default 127.0.0.1:9090 may be taken (a
    // server of a test file running in parallel, a Prometheus).
    const proc = spawn(serverBinary(), ['--listen=127.0.0.1:0', '--metrics_listen=127.0.0.1:0',
      `--data_dir=${this.dataDir}`, ...this.extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-8192); });
    return new Promise((resolve, reject) => {
      let out = '';
      const fail = (why) => {
        clearTimeout(timer);
        proc.kill('SIGKILL');
        reject(new Error(`strata-server: ${why}; stdout=${JSON.stringify(out)}\nstderr:\n${this.stderr}`));
      };
      const timer = setTimeout(() => fail(`no listening line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
      proc.on('error', (err) => fail(err.message));
      proc.on('exit', (code, sig) => fail(`exited early (code ${code}, signal ${sig})`));
      proc.stdout.setEncoding('utf8');
      const onData = (d) => {
        out += d;
        const m = /strata-server listening on (\S+):(\d+)/.exec(out);
        if (!m) return;
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        proc.removeAllListeners('error');
        proc.stdout.off('data', onData);
        proc.stdout.resume(); // keep draining
        this.address = `${m[1]}:${m[2]}`;
        resolve(this.address);
      };
      proc.stdout.on('data', onData);
    });
  }

  // SIGTERM, then resolves to the exit code (rejects if it does not exit).
  stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      this.proc = null;
      return Promise.resolve(proc ? proc.exitCode : 0);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`strata-server ignored SIGTERM for ${STOP_TIMEOUT_MS} ms\nstderr:\n${this.stderr}`));
      }, STOP_TIMEOUT_MS);
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        this.proc = null;
        resolve(code === null ? `signal ${sig}` : code);
      });
      proc.kill('SIGTERM');
    });
  }

  // SIGKILL (a crash: no shutdown, nothing flushed beyond what was
  // acknowledged); resolves once it exited. start() again reopens the same
  // data directory (on a new port).
  kill() {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });
  }

  async cleanup() {
    await this.stop().catch(() => {});
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { StrataServer, serverBinary, skipReason, genTestCerts, mtlsFlags, REPO_ROOT };
