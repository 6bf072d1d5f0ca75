/**
 * HPACK against RFC 7541's own examples (Appendix C.2–C.6: literal forms, the dynamic table across
 * requests, evictions at a 256-octet table, Huffman strings) and against hostile blocks.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HpackDecoder, HpackError, encodeHeaderBlock, encodeInteger, type HeaderField } from './hpack.js';
import { decodeHuffman, huffmanCodeOf } from './hpack-huffman.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** Decodes each block in turn on one decoder, checking its fields and the table after it. */
function decodesInTurn(
  decoder: HpackDecoder,
  steps: Array<{ block: string; fields: HeaderField[]; table: HeaderField[]; size: number }>,
): void {
  for (const [i, step] of steps.entries()) {
    const decoded = decoder.decode(hex(step.block));
    assert.deepEqual(decoded.fields, step.fields, `block ${i + 1}`);
    const table = decoder.dynamicTable();
    assert.deepEqual(table.entries, step.table, `table after block ${i + 1}`);
    assert.equal(table.size, step.size, `table size after block ${i + 1}`);
  }
}

const DATE_21 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE_22 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOCATION = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';

describe('HPACK decoding, RFC 7541 Appendix C', () => {
  test('C.2: literal with indexing, without indexing, never indexed, indexed', () => {
    decodesInTurn(new HpackDecoder(4096, 65536), [
      {
        block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572',
        fields: [['custom-key', 'custom-header']],
        table: [['custom-key', 'custom-header']],
        size: 55,
      },
    ]);
    decodesInTurn(new HpackDecoder(4096, 65536), [
      {
        block: '040c 2f73 616d 706c 652f 7061 7468',
        fields: [[':path', '/sample/path']],
        table: [],
        size: 0,
      },
      {
        block: '1008 7061 7373 776f 7264 0673 6563 7265 74',
        fields: [['password', 'secret']],
        table: [],
        size: 0,
      },
      { block: '82', fields: [[':method', 'GET']], table: [], size: 0 },
    ]);
  });

  const requests = (authority: string, cacheControl: string, customKey: string, customValue: string) => [
    {
      block: `8286 8441 ${authority}`,
      fields: [
        [':method', 'GET'],
        [':scheme', 'http'],
        [':path', '/'],
        [':authority', 'www.example.com'],
      ] as HeaderField[],
      table: [[':authority', 'www.example.com']] as HeaderField[],
      size: 57,
    },
    {
      block: `8286 84be 58 ${cacheControl}`,
      fields: [
        [':method', 'GET'],
        [':scheme', 'http'],
        [':path', '/'],
        [':authority', 'www.example.com'],
        ['cache-control', 'no-cache'],
      ] as HeaderField[],
      table: [
        ['cache-control', 'no-cache'],
        [':authority', 'www.example.com'],
      ] as HeaderField[],
      size: 110,
    },
    {
      block: `8287 85bf 40 ${customKey} ${customValue}`,
      fields: [
        [':method', 'GET'],
        [':scheme', 'https'],
        [':path', '/index.html'],
        [':authority', 'www.example.com'],
        ['custom-key', 'custom-value'],
      ] as HeaderField[],
      table: [
        ['custom-key', 'custom-value'],
        ['cache-control', 'no-cache'],
        [':authority', 'www.example.com'],
      ] as HeaderField[],
      size: 164,
    },
  ];

  test('C.3: requests without Huffman, the dynamic table growing across them', () => {
    decodesInTurn(
      new HpackDecoder(4096, 65536),
      requests(
        '0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
        '086e 6f2d 6361 6368 65',
        '0a63 7573 746f 6d2d 6b65 79',
        '0c63 7573 746f 6d2d 7661 6c75 65',
      ),
    );
  });

  test('C.4: the same requests with Huffman-coded strings', () => {
    decodesInTurn(
      new HpackDecoder(4096, 65536),
      requests(
        '8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
        '86a8 eb10 649c bf',
        '8825 a849 e95b a97d 7f',
        '8925 a849 e95b b8e8 b4bf',
      ),
    );
  });

  const responses = (s: {
    s302: string;
    private: string;
    date21: string;
    location: string;
    s307: string;
    date22: string;
    gzip: string;
    cookie: string;
  }) => [
    {
      block: `48 ${s.s302} 58 ${s.private} 61 ${s.date21} 6e ${s.location}`,
      fields: [
        [':status', '302'],
        ['cache-control', 'private'],
        ['date', DATE_21],
        ['location', LOCATION],
      ] as HeaderField[],
      table: [
        ['location', LOCATION],
        ['date', DATE_21],
        ['cache-control', 'private'],
        [':status', '302'],
      ] as HeaderField[],
      size: 222,
    },
    {
      // (":status", "302") is evicted to make room for (":status", "307")
      block: `48 ${s.s307} c1 c0 bf`,
      fields: [
        [':status', '307'],
        ['cache-control', 'private'],
        ['date', DATE_21],
        ['location', LOCATION],
      ] as HeaderField[],
      table: [
        [':status', '307'],
        ['location', LOCATION],
        ['date', DATE_21],
        ['cache-control', 'private'],
      ] as HeaderField[],
      size: 222,
    },
    {
      block: `88 c1 61 ${s.date22} c0 5a ${s.gzip} 77 ${s.cookie}`,
      fields: [
        [':status', '200'],
        ['cache-control', 'private'],
        ['date', DATE_22],
        ['location', LOCATION],
        ['content-encoding', 'gzip'],
        ['set-cookie', COOKIE],
      ] as HeaderField[],
      table: [
        ['set-cookie', COOKIE],
        ['content-encoding', 'gzip'],
        ['date', DATE_22],
      ] as HeaderField[],
      size: 215,
    },
  ];

  test('C.5: responses without Huffman at a 256-octet table, with evictions', () => {
    const literal = (text: string): string =>
      encodeInteger(text.length, 7, 0).toString('hex') + Buffer.from(text).toString('hex');
    decodesInTurn(
      new HpackDecoder(256, 65536),
      responses({
        s302: literal('302'),
        private: literal('private'),
        date21: literal(DATE_21),
        location: literal(LOCATION),
        s307: literal('307'),
        date22: literal(DATE_22),
        gzip: literal('gzip'),
        cookie: literal(COOKIE),
      }),
    );
    // the RFC's octets for the first response
    const decoder = new HpackDecoder(256, 65536);
    assert.deepEqual(
      decoder.decode(
        hex(
          '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
        ),
      ).fields.length,
      4,
    );
  });

  test('C.6: the same responses with Huffman-coded strings', () => {
    decodesInTurn(
      new HpackDecoder(256, 65536),
      responses({
        s302: '8264 02',
        private: '85ae c377 1a4b',
        date21: '96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff',
        location: '919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
        s307: '8364 0eff',
        date22: '96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 84a6 2d1b ff',
        gzip: '839b d9ab',
        cookie:
          'ad94 e782 1dd7 f2e6 c7b3 35df dfcd 5b39 60d5 af27 087f 3672 c1ab 270f b529 1f95 8731 6065 c003 ed4e e5b1 063d 5007',
      }),
    );
  });

  test("the Huffman code derived from Appendix B's lengths has the RFC's codes", () => {
    // (symbol, code, bits) rows of Appendix B, from the shortest codes to EOS
    const rows: Array<[number, number, number]> = [
      [48, 0x0, 5], // '0'
      [97, 0x3, 5], // 'a'
      [32, 0x14, 6], // ' '
      [58, 0x5c, 7], // ':'
      [122, 0x7b, 7], // 'z'
      [38, 0xf8, 8], // '&'
      [0, 0x1ff8, 13],
      [1, 0x7fffd8, 23],
      [2, 0xfffffe2, 28],
      [9, 0xffffea, 24],
      [10, 0x3ffffffc, 30],
      [13, 0x3ffffffd, 30],
      [22, 0x3ffffffe, 30],
      [255, 0x3ffffee, 26],
      [256, 0x3fffffff, 30], // EOS
    ];
    for (const [symbol, code, bits] of rows)
      assert.deepEqual(huffmanCodeOf(symbol), { code, bits }, `symbol ${symbol}`);
    // a complete prefix code: Kraft's sum is exactly 1
    let kraft = 0;
    for (let symbol = 0; symbol <= 256; symbol++) kraft += 2 ** -huffmanCodeOf(symbol).bits;
    assert.equal(kraft, 1);
  });

  test('every octet survives a Huffman round trip', () => {
    // encoded here bit by bit from the derived code: the decoder must invert it for all 256 symbols
    const octets = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    let bits = '';
    for (const octet of octets) {
      const { code, bits: length } = huffmanCodeOf(octet);
      bits += code.toString(2).padStart(length, '0');
    }
    bits += '1'.repeat((8 - (bits.length % 8)) % 8);
    const encoded = Buffer.from(bits.match(/.{8}/g)!.map((byte) => parseInt(byte, 2)));
    assert.deepEqual(decodeHuffman(encoded), octets);
  });
});

describe('HPACK decoding of hostile blocks', () => {
  const rejects = (
    block: Buffer | string,
    pattern: RegExp,
    decoder = new HpackDecoder(4096, 65536),
  ): void => {
    assert.throws(
      () => decoder.decode(typeof block === 'string' ? hex(block) : block),
      (err: unknown) => err instanceof HpackError && pattern.test(err.message),
    );
  };

  test('Huffman padding: EOS inside, more than 7 bits, not all ones', () => {
    rejects('0084 ffff ffff', /EOS/); // a literal name holding EOS (30 ones) and two more bits
    rejects('0082 ffff', /more than 7 bits/); // 16 ones: a prefix of EOS longer than 7 bits
    rejects('0081 00', /padded with other than EOS/); // '0' (00000) then 000 padding
    assert.deepEqual(decodeHuffman(hex('07')), Buffer.from('0')); // 00000 then 111: valid
  });

  test('integers: past 2^31 - 1, or a run of continuation octets, is an error, not a wrap', () => {
    rejects('ff ff ff ff ff 0f', /larger than 2\^31/);
    rejects('ff 80 80 80 80 80 80 80 80 80 01', /more than 5 octets/);
    rejects('ff', /ends inside a field/);
  });

  test('indexes past the tables, index 0, strings past the block', () => {
    rejects('be', /past the tables/); // 62 with an empty dynamic table
    rejects('80', /index 0/);
    rejects('000a 61', /longer than the header block/);
  });

  test('a table size update above our setting, or after a field, is an error; a lower one evicts', () => {
    rejects(encodeInteger(4097, 5, 0x20), /above the 4096 allowed/);
    rejects('82 3f e1 1f', /after a header field/);
    const decoder = new HpackDecoder(4096, 65536);
    decoder.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    assert.equal(decoder.dynamicTable().size, 55);
    decoder.decode(hex('20')); // size 0: everything evicted
    assert.equal(decoder.dynamicTable().size, 0);
    rejects('be', /past the tables/, decoder);
  });

  test('a header list over the limit is still decoded (the table stays in step) but flagged', () => {
    const decoder = new HpackDecoder(4096, 100);
    const big = Buffer.concat([
      Buffer.of(0x40),
      encodeHeaderBlock([['x-big', 'v'.repeat(200)]]).subarray(1),
      hex('82'),
    ]);
    const decoded = decoder.decode(big);
    assert.equal(decoded.oversized, true);
    assert.deepEqual(decoded.fields, []);
    assert.equal(decoder.dynamicTable().entries.length, 1);
  });

  test('the encoder writes literals without indexing that the decoder reads back', () => {
    const fields: HeaderField[] = [
      [':method', 'POST'],
      ['authorization', 'Bearer ' + 'a'.repeat(300)],
    ];
    assert.deepEqual(new HpackDecoder(4096, 65536).decode(encodeHeaderBlock(fields)).fields, fields);
  });
});
