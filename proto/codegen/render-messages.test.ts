import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { messages, services, type MessageName } from '../gen/messages.js';
import type { MessageType, WireMessage } from '../wire/message-type.js';
import { loadProtoFiles, protoIncludeDir } from './proto-files.js';
import { GENERATED_MESSAGES_FILE, renderMessages } from './render-messages.js';
import { REGENERATE_COMMAND } from './render-types.js';

test('the committed proto/gen/messages.ts matches the .proto files', async () => {
  const committed = readFileSync(path.join(protoIncludeDir(), GENERATED_MESSAGES_FILE), 'utf8');
  assert.ok(
    committed === (await renderMessages()),
    `proto/gen/messages.ts is stale: regenerate it with \`${REGENERATE_COMMAND}\``,
  );
});

// The reference: protobufjs, as it reads the .proto files, its codecs built at run time.
const reference = loadProtoFiles();
const referenceType = (name: string): protobuf.Type => reference.lookupType(`skiff.v1.${name}`);
/** What protobufjs's toObject gives in the codecs' shape (proto/wire/message-type.ts). */
const CODEC_SHAPE: protobuf.IConversionOptions = {
  longs: Number,
  bytes: String,
  defaults: false,
  arrays: false,
  objects: false,
  oneofs: false,
};
const names = Object.keys(messages) as MessageName[];

/** A small deterministic random source (mulberry32), so a failure names a case that can be rerun. */
class Random {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(below: number): number {
    return Math.floor(this.next() * below);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  uint32(): number {
    return (this.next() * 4294967296) >>> 0;
  }
}

const STRINGS = [
  '',
  'a',
  'web-0',
  'é',
  '€ and 😀',
  'x'.repeat(42),
  'é'.repeat(42),
  'y'.repeat(43),
  'z'.repeat(127),
  '€'.repeat(60),
  'long '.repeat(40),
  '__proto__',
];
const INT32S = [0, 1, -1, 127, 128, 16_384, 2 ** 31 - 1, -(2 ** 31), 80, -42];
const UINT32S = [0, 1, 127, 128, 300, 16_384, 2 ** 31, 2 ** 32 - 1];
const INT64S = [0, 1, -1, 2 ** 31, 2 ** 32 + 5, -(2 ** 40), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];

function randomBase64(random: Random): string {
  return Buffer.from(
    Array.from({ length: random.pick([0, 1, 2, 3, 10, 200]) }, () => random.int(256)),
  ).toString('base64');
}

function scalarSample(type: string, random: Random): unknown {
  switch (type) {
    case 'string':
      return random.pick(STRINGS);
    case 'bool':
      return random.chance(0.5);
    case 'int32':
      return random.pick(INT32S);
    case 'uint32':
      return random.pick(UINT32S);
    case 'int64':
      return random.pick(INT64S);
    case 'bytes':
      return randomBase64(random);
    default:
      throw new Error(`no samples of ${type}`);
  }
}

/** A message in the codecs' shape with some of its fields set (zero values too), nesting up to `depth`. */
function sample(type: MessageType, random: Random, depth: number): WireMessage {
  const out: WireMessage = {};
  for (const field of type.fields) {
    if (!random.chance(depth > 3 ? 0.2 : 0.6)) continue;
    const one = (): unknown =>
      typeof field.type === 'string'
        ? scalarSample(field.type, random)
        : sample(field.type, random, depth + 1);
    if (typeof field.type !== 'string' && depth >= 6) continue;
    if (field.map) {
      const map: Record<string, unknown> = {};
      for (let i = random.int(4); i > 0; i--) {
        const key = random.pick(STRINGS);
        Object.defineProperty(map, key, {
          value: one(),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      }
      out[field.name] = map;
    } else if (field.repeated) {
      out[field.name] = Array.from({ length: random.int(4) }, one);
    } else {
      out[field.name] = one();
    }
  }
  return out;
}

/** Arbitrary wire bytes of a message, as a peer could send them: fields in any order, repeated, zero, unpacked, unknown. */
function randomWire(type: MessageType, random: Random, depth: number): Uint8Array {
  const w = protobuf.Writer.create();
  const byId = new Set(type.fields.map((field) => field.id));
  for (let count = random.int(depth > 3 ? 3 : 8); count > 0; count--) {
    if (type.fields.length === 0 || random.chance(0.15)) {
      let id = 1 + random.int(40);
      while (byId.has(id)) id += 40;
      unknownField(w, id, random);
      continue;
    }
    const field = random.pick(type.fields);
    if (random.chance(0.05)) {
      // a known number with a wire type it does not have: skipped as unknown
      const wrong = typeof field.type === 'string' && field.type !== 'string' && field.type !== 'bytes';
      if (wrong) w.uint32((field.id << 3) | 5).fixed32(0);
      else w.uint32(field.id << 3).uint32(7);
      continue;
    }
    if (field.map) {
      const entry = protobuf.Writer.create();
      if (random.chance(0.9)) entry.uint32(0x0a).string(random.pick(STRINGS));
      if (random.chance(0.2)) unknownField(entry, 3 + random.int(5), random);
      if (random.chance(0.9)) {
        if (typeof field.type === 'string') {
          entry.uint32(0x12);
          if (field.type === 'bytes') entry.bytes(Buffer.from(randomBase64(random), 'base64'));
          else entry.string(random.pick(STRINGS));
        } else {
          entry.uint32(0x12).bytes(randomWire(field.type, random, depth + 1));
        }
      }
      w.uint32((field.id << 3) | 2).bytes(entry.finish());
    } else if (typeof field.type !== 'string') {
      if (depth < 6) w.uint32((field.id << 3) | 2).bytes(randomWire(field.type, random, depth + 1));
    } else if (field.repeated && field.type !== 'string' && field.type !== 'bytes' && random.chance(0.5)) {
      w.uint32((field.id << 3) | 2).fork();
      for (let i = random.int(4); i >= 0; i--) wireScalar(w, field.type, random);
      w.ldelim();
    } else {
      const wireType = field.type === 'string' || field.type === 'bytes' ? 2 : 0;
      w.uint32((field.id << 3) | wireType);
      wireScalar(w, field.type, random);
    }
  }
  return w.finish();
}

function wireScalar(w: protobuf.Writer, type: string, random: Random): void {
  switch (type) {
    case 'string':
      w.string(random.pick(STRINGS));
      return;
    case 'bytes':
      w.bytes(Buffer.from(randomBase64(random), 'base64'));
      return;
    case 'bool':
      w.uint32(random.pick([0, 1, 2, 300]));
      return;
    case 'int32':
    case 'uint32':
      // also a varint wider than 32 bits, whose high bits a reader drops
      if (random.chance(0.2))
        w.int64({ low: random.uint32() | 0, high: random.uint32() | 0, unsigned: false });
      else if (type === 'int32') w.int32(random.pick(INT32S));
      else w.uint32(random.pick(UINT32S));
      return;
    case 'int64':
      // any 64 bits, beyond 2^53 too
      if (random.chance(0.3))
        w.int64({ low: random.uint32() | 0, high: random.uint32() | 0, unsigned: false });
      else w.int64(random.pick(INT64S));
      return;
    default:
      throw new Error(`no wire samples of ${type}`);
  }
}

function unknownField(w: protobuf.Writer, id: number, random: Random): void {
  switch (random.int(4)) {
    case 0:
      w.uint32(id << 3).uint64(random.uint32() * 1000);
      return;
    case 1:
      w.uint32((id << 3) | 1).fixed64(random.uint32());
      return;
    case 2:
      w.uint32((id << 3) | 2).bytes(Buffer.from('unknown'));
      return;
    default:
      w.uint32((id << 3) | 5).fixed32(random.uint32());
  }
}

const referenceDecode = (name: string, bytes: Uint8Array): WireMessage => {
  const type = referenceType(name);
  return type.toObject(type.decode(bytes), CODEC_SHAPE);
};

describe('the generated codecs agree with protobufjs over every message', () => {
  test('every message and service of the .proto files is generated, with its fields', () => {
    const pkg = reference.lookup('skiff.v1') as protobuf.Namespace;
    const referenceTypes = pkg.nestedArray.filter((nested) => nested instanceof protobuf.Type);
    assert.deepEqual(
      names,
      referenceTypes.map((type) => type.name),
    );
    for (const name of names) {
      const type = referenceType(name);
      assert.deepEqual(
        messages[name].fields.map((field) => [field.name, field.id, field.repeated, field.map]),
        type.fieldsArray.map((field) => [field.name, field.id, field.repeated && !field.map, field.map]),
        name,
      );
    }
    assert.equal(messages.PodStatus.field('hostIp')?.jsonName, 'hostIP');
    assert.equal(messages.Pod.field('spec')?.type, messages.PodSpec);
    assert.equal(services.Api.methods['Watch']?.responseStream, true);
    assert.equal(services.Api.methods['List']?.path, '/skiff.v1.Api/List');
    assert.equal(services.Admin.methods['CreateToken']?.response, messages.CreateTokenResponse);
  });

  test("encoding gives protobufjs's bytes, and each decodes the other's as protobufjs does", () => {
    const random = new Random(7);
    for (const name of names) {
      for (let round = 0; round < 25; round++) {
        const value = sample(messages[name], random, 0);
        const type = referenceType(name);
        const expected = type.encode(type.fromObject(value)).finish();
        const encoded = messages[name].encode(value);
        assert.deepEqual(encoded, Buffer.from(expected), `${name} round ${round}: ${JSON.stringify(value)}`);
        assert.deepStrictEqual(
          messages[name].decode(expected),
          referenceDecode(name, expected),
          `${name} round ${round}`,
        );
      }
    }
  });

  test('any wire bytes of a message decode as protobufjs decodes them', () => {
    const random = new Random(11);
    for (const name of names) {
      for (let round = 0; round < 40; round++) {
        const bytes = randomWire(messages[name], random, 0);
        const context = `${name} round ${round}: ${Buffer.from(bytes).toString('hex')}`;
        assert.deepStrictEqual(messages[name].decode(bytes), referenceDecode(name, bytes), context);
        // cut short: refused wherever protobufjs refuses it, the same message where it is not
        const cut = bytes.subarray(0, random.int(bytes.length + 1));
        let expected: WireMessage | undefined;
        try {
          expected = referenceDecode(name, cut);
        } catch {
          assert.throws(() => messages[name].decode(cut), RangeError, `${context} cut at ${cut.length}`);
          continue;
        }
        assert.deepStrictEqual(messages[name].decode(cut), expected, `${context} cut at ${cut.length}`);
      }
    }
  });

  test('a message field given as its encoding is written as it is', () => {
    const pod = { metadata: { name: 'web-0' }, spec: { nodeName: 'n1' } };
    const podBytes = messages.Pod.encode(pod);
    assert.deepEqual(messages.Object.encode({ pod: podBytes }), messages.Object.encode({ pod }));
    assert.deepEqual(messages.Object.decode(messages.Object.encode({ pod: podBytes })), { pod });
  });

  test('of a oneof, the member read last is kept', () => {
    const both = Buffer.concat([
      messages.Object.encode({ pod: { metadata: { name: 'p' } } }),
      messages.Object.encode({ service: { metadata: { name: 's' } } }),
    ]);
    assert.deepStrictEqual(messages.Object.decode(both), { service: { metadata: { name: 's' } } });
    assert.deepStrictEqual(messages.Object.decode(both), referenceDecode('Object', both));
    const intThenString = Buffer.concat([
      messages.IntOrString.encode({ intVal: 0 }),
      messages.IntOrString.encode({ strVal: '25%' }),
    ]);
    assert.deepStrictEqual(messages.IntOrString.decode(intThenString), { strVal: '25%' });
    assert.deepStrictEqual(messages.IntOrString.decode(messages.IntOrString.encode({ intVal: 0 })), {
      intVal: 0,
    });
  });

  test('a value of the wrong type is refused, not written as something else', () => {
    assert.throws(() => messages.ListRequest.encode({ limit: '5' }), /expected an int64 number, got string/);
    assert.throws(() => messages.ObjectMeta.encode({ name: 5 }), /expected a string, got number/);
    assert.throws(() => messages.ObjectMeta.encode({ labels: ['a'] }), /expected a map/);
    // the shared writer is left empty for the next encode
    assert.deepEqual(messages.ObjectMeta.decode(messages.ObjectMeta.encode({ name: 'a' })), { name: 'a' });
  });
});
