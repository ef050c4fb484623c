#!/usr/bin/env node
// Strata from Node.js WITHOUT the .proto file: everything is discovered through
// gRPC server reflection (grpc.reflection.v1alpha), the way grpcurl works.
//
//   node examples/reflect.js [host:port]      (default 127.0.0.1:50051)
//
// 1. lists the services the server exposes,
// 2. describes strata.v1.KV (methods, request/response types, streaming),
// 3. builds a client from the file descriptors the server returned and calls
//    Put, Get and Scan with it.
// It also exports a tiny grpcurl-like "invoke a method with a JSON request"
// (callJson) used by the tests to run the grpcurl commands in docs/clients.md.
'use strict';

const grpc = require('@grpc/grpc-js');
const { GrpcReflection } = require('grpc-js-reflection-client');

// The service every Strata server exposes, and the reflection protocol version
// the server speaks (gRPC 1.51's C++ reflection serves v1alpha).
const KV_SERVICE = 'strata.v1.KV';
const REFLECTION_VERSION = 'v1alpha';

// One reflection session with a server. Close it when done.
class Reflector {
  constructor(address, credentials = grpc.credentials.createInsecure()) {
    this.address = address;
    this.credentials = credentials;
    this.reflection = new GrpcReflection(address, credentials, {}, REFLECTION_VERSION);
    this.descriptors = new Map(); // symbol -> Descriptor (protobufjs root + helpers)
    this.clients = [];
  }

  // Fully qualified names of every service the server registers.
  async listServices() {
    return this.reflection.listServices();
  }

  // The Descriptor (a protobufjs Root built from the server's FileDescriptorProtos
  // and their dependencies) of the file that defines symbol.
  async descriptorFor(symbol) {
    if (!this.descriptors.has(symbol)) {
      let descriptor;
      try {
        descriptor = await this.reflection.getDescriptorBySymbol(symbol);
      } catch (err) {
        // e.g. "Symbol not found": the server lists the service but has no
        // descriptor for it, so neither this script nor grpcurl can call it.
        const hint = symbol.startsWith('grpc.health.v1.')
          ? ' (a C++ server using EnableDefaultHealthCheckService lists Health but has no ' +
            'descriptor for it unless grpc/health/v1/health.proto is linked in; grpc/grpc#36665)'
          : '';
        throw new Error(`server reflection cannot resolve ${symbol}: ${err.message}${hint}`);
      }
      this.descriptors.set(symbol, descriptor);
    }
    return this.descriptors.get(symbol);
  }

  // [{name, requestType, responseType, requestStream, responseStream}] of a
  // service, in declaration order; types are fully qualified (strata.v1.GetRequest).
  async describeService(serviceName) {
    const root = (await this.descriptorFor(serviceName)).getProtobufJsRoot();
    const service = root.lookupService(serviceName);
    return service.methodsArray.map((m) => {
      m.resolve();
      return {
        name: m.name,
        requestType: m.resolvedRequestType.fullName.replace(/^\./, ''),
        responseType: m.resolvedResponseType.fullName.replace(/^\./, ''),
        requestStream: Boolean(m.requestStream),
        responseStream: Boolean(m.responseStream),
      };
    });
  }

  // A grpc-js client for serviceName built from the reflected descriptors, the
  // same shape as a proto-loader client (methods Get, Put, Scan, ...; bytes as
  // Buffers; proto field names).
  async serviceClient(serviceName) {
    const descriptor = await this.descriptorFor(serviceName);
    const pkg = descriptor.getPackageObject({
      keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
    });
    const Ctor = serviceName.split('.').reduce((obj, part) => obj && obj[part], pkg);
    if (typeof Ctor !== 'function') throw new Error(`service ${serviceName} not in its descriptor`);
    const client = new Ctor(this.address, this.credentials);
    this.clients.push(client);
    return client;
  }

  // grpcurl-style call: fullMethod is "package.Service/Method", request is the
  // proto3 JSON object (bytes as base64 strings; proto or lowerCamel names).
  // Resolves to the list of response messages as proto3 JSON objects (one for
  // a unary method), with default values omitted, as grpcurl prints them.
  async callJson(fullMethod, request = {}, { deadlineMs = 10000 } = {}) {
    const slash = fullMethod.lastIndexOf('/');
    const serviceName = fullMethod.slice(0, slash);
    const methodName = fullMethod.slice(slash + 1);
    const root = (await this.descriptorFor(serviceName)).getProtobufJsRoot();
    const method = root.lookupService(serviceName).methods[methodName];
    if (!method) throw new Error(`${serviceName} has no method ${methodName}`);
    method.resolve();
    if (method.requestStream) throw new Error('client streaming is not supported');
    const reqType = method.resolvedRequestType;
    const respType = method.resolvedResponseType;
    const payload = reqType.encode(reqType.fromObject(fromJsonNames(reqType, request))).finish();
    const generic = new grpc.Client(this.address, this.credentials);
    this.clients.push(generic);
    const path = `/${serviceName}/${methodName}`;
    const serialize = (buf) => Buffer.from(buf);
    const deserialize = (buf) => toJson(respType, respType.decode(buf));
    const options = { deadline: new Date(Date.now() + deadlineMs) };
    if (!method.responseStream) {
      return new Promise((resolve, reject) => {
        generic.makeUnaryRequest(path, serialize, deserialize, payload, options,
          (err, resp) => (err ? reject(err) : resolve([resp])));
      });
    }
    const out = [];
    for await (const msg of generic.makeServerStreamRequest(path, serialize, deserialize, payload, options)) {
      out.push(msg);
    }
    return out;
  }

  close() {
    for (const c of this.clients) c.close();
    this.clients = [];
    if (this.reflection.client) this.reflection.client.close();
  }
}

// A method as grpcurl's describe prints it:
//   rpc Scan ( .strata.v1.ScanRequest ) returns ( stream .strata.v1.ScanResponse );
function rpcLine(m) {
  return `rpc ${m.name} ( ${m.requestStream ? 'stream ' : ''}.${m.requestType} ) returns ` +
         `( ${m.responseStream ? 'stream ' : ''}.${m.responseType} );`;
}

function lowerCamel(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

// Accepts both proto field names (start_key) and JSON names (startKey), as
// grpcurl does, and returns an object keyed by the names protobufjs uses.
function fromJsonNames(type, obj) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return obj;
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    const field = type.fields[k] || type.fieldsArray.find((f) => lowerCamel(f.name) === k);
    if (!field) throw new Error(`${type.fullName} has no field "${k}"`);
    field.resolve();
    const sub = field.resolvedType && field.resolvedType.fields ? field.resolvedType : null;
    const conv = (x) => (sub ? fromJsonNames(sub, x) : x);
    out[field.name] = Array.isArray(v) ? v.map(conv) : conv(v);
  }
  return out;
}

// proto3 JSON of a decoded message: lowerCamel names, bytes in base64, enums by
// name, 64-bit integers as strings, fields at their default value omitted.
function toJson(type, message) {
  const obj = type.toObject(message, { bytes: String, enums: String, longs: String });
  return renameToJson(type, obj);
}

function renameToJson(type, obj) {
  const out = {};
  for (const field of type.fieldsArray) {
    if (!(field.name in obj)) continue;
    field.resolve();
    let v = obj[field.name];
    const sub = field.resolvedType && field.resolvedType.fields ? field.resolvedType : null;
    if (sub) v = Array.isArray(v) ? v.map((x) => renameToJson(sub, x)) : renameToJson(sub, v);
    if (isDefault(v)) continue;
    out[lowerCamel(field.name)] = v;
  }
  return out;
}

function isDefault(v) {
  return v === false || v === 0 || v === '' || v === '0' || (Array.isArray(v) && v.length === 0);
}

async function main(address = '127.0.0.1:50051', log = console.log) {
  const r = new Reflector(address);
  try {
    const services = await r.listServices();
    log('services:');
    for (const s of [...services].sort()) log(`  ${s}`);

    const methods = await r.describeService(KV_SERVICE);
    log(`${KV_SERVICE}:`);
    for (const m of methods) log(`  ${rpcLine(m)}`);

    const kv = await r.serviceClient(KV_SERVICE);
    const call = (name, req) => new Promise((resolve, reject) => {
      kv[name](req, { deadline: new Date(Date.now() + 10000) }, (e, resp) => (e ? reject(e) : resolve(resp)));
    });
    await call('Put', { key: Buffer.from('reflected'), value: Buffer.from('no .proto needed') });
    const got = await call('Get', { key: Buffer.from('reflected') });
    log(`Get reflected -> found=${got.found} value=${got.value}`);

    const pairs = [];
    for await (const resp of kv.Scan({ start_key: Buffer.from('r'), end_key: Buffer.from('s') })) {
      for (const p of resp.pairs) pairs.push([p.key.toString(), p.value.toString()]);
    }
    for (const [k, v] of pairs) log(`Scan -> ${k} = ${v}`);
    return { services, methods, got, pairs };
  } finally {
    r.close();
  }
}

module.exports = { Reflector, KV_SERVICE, main, rpcLine, toJson, fromJsonNames };

if (require.main === module) {
  main(process.argv[2]).catch((err) => {
    console.error(`error: ${err.code !== undefined ? grpc.status[err.code] : ''} ${err.details || err.message}`);
    process.exit(1);
  });
}
