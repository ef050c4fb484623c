// A TCP forwarder that keeps one address across server restarts (as
// client/python/tests/tcp_proxy.py). A restarted strata-server listens on a new
// port (the tests use port 0), but a Client dials one target for its lifetime:
// TcpProxy listens on 127.0.0.1 (a port the OS picks), forwards each connection
// to the current backend, and cuts the client's side as soon as the backend's
// side ends, so a SIGKILLed server looks like a dropped connection and
// setBackend() to the restarted server like a server coming back. While the
// backend is down, connections are accepted and closed at once.
'use strict';

const net = require('node:net');

class TcpProxy {
  constructor(backend) {
    this.backend = backend;
    this.sockets = new Set();
    this.connections = 0;
    this.waiters = []; // [n, resolve]: waitConnections
    this.address = null;
    this.server = net.createServer((client) => this._serve(client));
  }

  // Resolves to "127.0.0.1:PORT".
  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.address = `127.0.0.1:${this.server.address().port}`;
        resolve(this.address);
      });
    });
  }

  // Forwards new connections to backend ("host:port") from now on.
  setBackend(backend) {
    this.backend = backend;
  }

  // Resolves once n connections were accepted in all.
  waitConnections(n) {
    if (this.connections >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push([n, resolve]));
  }

  _serve(client) {
    this.connections++;
    this.waiters = this.waiters.filter(([n, resolve]) => (this.connections >= n ? (resolve(), false) : true));
    const at = this.backend.lastIndexOf(':');
    const upstream = net.connect({ host: this.backend.slice(0, at), port: Number(this.backend.slice(at + 1)) });
    this.sockets.add(client);
    this.sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  // Stops listening and cuts every connection.
  close() {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

module.exports = { TcpProxy };
