// Compiled (never run) by test/pack.test.js with tsc --strict against the
// installed package's index.d.ts: the declarations describe the API, and the
// expected errors at the end prove they reject misuse (an expected error that
// does not happen fails tsc too).
import { Client, WriteBatch, StrataError, status, type KeyValue, type TLSOptions, type WriteOp } from '@strata/client';

async function sample(): Promise<void> {
  const tls: TLSOptions = { ca: 'ca.crt', cert: Buffer.from('pem'), key: 'client.key', serverName: 'localhost' };
  const db = new Client('127.0.0.1:50051', { timeoutMs: 5000, tls, channelOptions: { 'grpc.max_receive_message_length': 1 << 24 } });
  await db.put('k', Buffer.from('v'), { timeoutMs: null });
  const v: Buffer | null = await db.get(new Uint8Array([1]));
  const ops: WriteOp[] = [['put', 'a', '1'], ['delete', 'b']];
  await db.write(ops);
  await db.write(new WriteBatch().put('a', '1').delete('b'));
  for await (const kv of db.scan({ start: 'a', end: 'b', limit: 10, keysOnly: true })) {
    const pair: KeyValue = kv;
    console.log(pair.key.length, pair.value.length, v);
  }
  const serving: boolean = await db.health('strata.v1.KV');
  const methods: Readonly<Record<string, string>> = Client.RPC_METHODS;
  console.log(serving, methods);
  try {
    await db.delete('k');
  } catch (e) {
    if (e instanceof StrataError && e.code === status.UNAVAILABLE) console.log(e.codeName, e.details);
  }
  db.close();

  // @ts-expect-error keys are bytes or strings
  await db.get(42);
  // @ts-expect-error get resolves to Buffer | null
  const s: string = await db.get('k');
  // @ts-expect-error timeoutMs, not timeout
  new Client('x', { timeout: 5 });
  // @ts-expect-error serverName is a string
  new Client('x', { tls: { serverName: 1 } });
  // @ts-expect-error a write op is put or delete
  await db.write([['upsert', 'k', 'v']]);
  console.log(s);
}

void sample;
