/**
 * Random access to the files of an image archive — an OCI image layout or a `docker save`
 * output — whether it is a directory or a tar file. The tar is indexed once (member name →
 * offset, size) and members are then read in place, so import can read index.json and the
 * manifests first, check every declared size against the limits, and only then copy blobs.
 *
 * Archives are hostile input: member names are only ever used as lookup keys (never as paths to
 * write), symlinks (legacy docker save uses them for repeated layers) must resolve inside the
 * archive, and a directory archive never reads through a symlink that leaves it.
 */
import { createReadStream } from 'node:fs';
import { lstat, open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { join, posix, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError } from '../../../proto/errors.js';

export interface ImageArchive {
  /** The path given to import, for messages. */
  readonly source: string;
  has(path: string): Promise<boolean>;
  /** Size in bytes; NotFoundError when absent. */
  size(path: string): Promise<number>;
  open(path: string): Promise<Readable>;
  readSmall(path: string, maxBytes: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** "./a//b/" -> "a/b"; undefined for names that climb out or are absolute. */
export function cleanMemberName(name: string): string | undefined {
  if (name.startsWith('/')) return undefined;
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') return undefined;
    parts.push(p);
  }
  return parts.join('/');
}

export async function openImageArchive(path: string): Promise<ImageArchive> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new NotFoundError(`import ${path}: no such file or directory`);
  }
  if (st.isDirectory()) return new DirectoryArchive(await realpath(path), path);
  if (!st.isFile()) throw new InvalidArgumentError(`import ${path}: not a directory or a tar file`, 'path');
  return TarArchive.index(path);
}

class DirectoryArchive implements ImageArchive {
  constructor(
    private readonly root: string,
    readonly source: string,
  ) {}

  /** The real path of a member, refused when it is not a regular file inside the archive. */
  private async resolve(name: string): Promise<string | undefined> {
    const clean = cleanMemberName(name);
    if (clean === undefined) return undefined;
    let real;
    try {
      real = await realpath(join(this.root, clean));
    } catch {
      return undefined;
    }
    if (!real.startsWith(this.root + sep)) {
      throw new InvalidArgumentError(
        `import ${this.source}: ${clean} is a symlink that leads outside the archive`,
        clean,
      );
    }
    const st = await lstat(real);
    return st.isFile() ? real : undefined;
  }

  private async need(name: string): Promise<string> {
    const real = await this.resolve(name);
    if (!real) throw new NotFoundError(`import ${this.source}: ${name} is missing from the archive`);
    return real;
  }

  async has(name: string): Promise<boolean> {
    return (await this.resolve(name)) !== undefined;
  }

  async size(name: string): Promise<number> {
    return (await stat(await this.need(name))).size;
  }

  async open(name: string): Promise<Readable> {
    return createReadStream(await this.need(name), { highWaterMark: 1 << 20 });
  }

  async readSmall(name: string, maxBytes: number): Promise<Buffer> {
    const real = await this.need(name);
    const handle = await open(real, 'r');
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) {
        throw new ResourceExhaustedError(
          `import ${this.source}: ${name} is ${size} bytes, over the limit of ${maxBytes}`,
        );
      }
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  async close(): Promise<void> {}
}

type Member = { kind: 'file'; offset: number; size: number } | { kind: 'symlink'; target: string };

const BLOCK = 512;
const MAX_META = 1 << 20;

function tarNumber(buf: Buffer, start: number, len: number): number {
  if (buf[start]! & 0x80) {
    let v = 0;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + buf[i]!;
    return v;
  }
  const s = buf
    .toString('latin1', start, start + len)
    .replace(/[\0 ]+$/, '')
    .trim();
  if (!/^[0-7]*$/.test(s)) return NaN;
  return s === '' ? 0 : parseInt(s, 8);
}

/**
 * The records of a PAX extended header, each `LEN SP KEY=VALUE LF` where LEN (decimal digits
 * only) counts the whole record's bytes; records are walked by that prefix, since a value may
 * itself hold newlines. Anything else calls `refuse`, which throws.
 */
export function parsePaxRecords(data: Buffer, refuse: (why: string) => never): Array<[string, string]> {
  const records: Array<[string, string]> = [];
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0 && data.subarray(at).every((b) => b === 0)) break;
    let digits = 0;
    let len = 0;
    while (at + digits < data.length && data[at + digits]! >= 0x30 && data[at + digits]! <= 0x39) {
      len = len * 10 + (data[at + digits]! - 0x30);
      if (++digits > 7) refuse(`record at offset ${at} has an over-long length`);
    }
    if (digits === 0) refuse(`record at offset ${at} does not start with its length`);
    if (data[at + digits] !== 0x20) refuse(`record at offset ${at}: no space after the length`);
    if (len < digits + 4 || at + len > data.length)
      refuse(`record at offset ${at} has length ${len}, out of bounds`);
    if (data[at + len - 1] !== 0x0a) refuse(`record at offset ${at} does not end with a newline`);
    const body = data.subarray(at + digits + 1, at + len - 1);
    const eq = body.indexOf(0x3d);
    if (eq <= 0) refuse(`record at offset ${at} has no KEY=VALUE`);
    records.push([body.toString('utf8', 0, eq), body.toString('utf8', eq + 1)]);
    at += len;
  }
  return records;
}

function tarString(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end >= 0 && end < start + len ? end : start + len);
}

class TarArchive implements ImageArchive {
  private constructor(
    readonly source: string,
    private readonly handle: FileHandle,
    private readonly members: Map<string, Member>,
  ) {}

  static async index(path: string): Promise<TarArchive> {
    const handle = await open(path, 'r');
    try {
      const members = new Map<string, Member>();
      const { size: fileSize } = await handle.stat();
      const head = Buffer.alloc(BLOCK);
      const bad = (why: string): never => {
        throw new InvalidArgumentError(`import ${path}: not a valid tar archive (${why})`, 'path');
      };
      let offset = 0;
      let longName: string | undefined;
      let paxPath: string | undefined;
      let paxSize: number | undefined;
      let paxLink: string | undefined;
      for (;;) {
        const { bytesRead } = await handle.read(head, 0, BLOCK, offset);
        if (bytesRead === 0 && offset > 0) break;
        if (offset === 0 && bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
          bad('it is gzip-compressed; gunzip it first');
        }
        if (bytesRead < BLOCK) bad(`truncated at byte ${offset}`);
        if (head.every((b) => b === 0)) break;
        let sum = 0;
        for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : head[i]!;
        if (sum !== tarNumber(head, 148, 8)) bad(`header checksum mismatch at byte ${offset}`);
        const type = String.fromCharCode(head[156]!);
        const headerSize = tarNumber(head, 124, 12);
        if (!Number.isSafeInteger(headerSize) || headerSize < 0) bad(`bad size field at byte ${offset}`);
        const dataOffset = offset + BLOCK;
        const readMeta = async (size: number): Promise<Buffer> => {
          if (size > MAX_META) bad(`metadata record of ${size} bytes at byte ${offset}`);
          const b = Buffer.alloc(size);
          const { bytesRead: n } = await handle.read(b, 0, size, dataOffset);
          if (n < size) bad(`truncated at byte ${dataOffset + n}`);
          return b;
        };
        if (type === 'x') {
          const records = parsePaxRecords(await readMeta(headerSize), (why) =>
            bad(`PAX header ${JSON.stringify(tarString(head, 0, 100))} at byte ${offset}: ${why}`),
          );
          for (const [key, value] of records) {
            if (key === 'path') paxPath = value;
            else if (key === 'linkpath') paxLink = value;
            else if (key === 'size') {
              const n = /^\d+$/.test(value) ? Number(value) : NaN;
              if (!Number.isSafeInteger(n))
                bad(
                  `PAX header ${JSON.stringify(tarString(head, 0, 100))} at byte ${offset}: size ${JSON.stringify(value)} is not a byte count`,
                );
              paxSize = n;
            }
          }
        } else if (type === 'L') {
          longName = (await readMeta(headerSize)).toString('utf8').replace(/\0+$/, '');
        } else if (type === 'K') {
          paxLink = (await readMeta(headerSize)).toString('utf8').replace(/\0+$/, '');
        } else if (type !== 'g') {
          let name = paxPath ?? longName;
          if (name === undefined) {
            name = tarString(head, 0, 100);
            const prefix = head.toString('latin1', 257, 262) === 'ustar' ? tarString(head, 345, 155) : '';
            if (prefix) name = `${prefix}/${name}`;
          }
          const size = paxSize ?? headerSize;
          const clean = cleanMemberName(name);
          if (clean !== undefined && clean !== '') {
            if (type === '0' || type === '\0' || type === '7')
              members.set(clean, { kind: 'file', offset: dataOffset, size });
            else if (type === '2')
              members.set(clean, { kind: 'symlink', target: paxLink ?? tarString(head, 157, 100) });
          }
          longName = paxPath = paxLink = paxSize = undefined;
          const next = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
          if (next > fileSize) bad(`member ${JSON.stringify(name)} runs past the end of the file`);
          offset = next;
          continue;
        }
        // Both sizes are checked non-negative above, so each turn moves forward; the end-of-file
        // check keeps a metadata header from claiming more bytes than the file has.
        offset = dataOffset + Math.ceil(headerSize / BLOCK) * BLOCK;
        if (offset > fileSize)
          bad(`metadata header at byte ${dataOffset - BLOCK} runs past the end of the file`);
      }
      return new TarArchive(path, handle, members);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  private lookup(name: string): { offset: number; size: number } | undefined {
    let clean = cleanMemberName(name);
    for (let hops = 0; clean !== undefined && hops < 16; hops++) {
      const m = this.members.get(clean);
      if (!m) return undefined;
      if (m.kind === 'file') return m;
      const target: string = m.target.startsWith('/') ? m.target : posix.join(posix.dirname(clean), m.target);
      const next = cleanMemberName(posix.normalize(target));
      if (next === undefined) {
        throw new InvalidArgumentError(
          `import ${this.source}: member ${clean} is a symlink that leads outside the archive`,
          clean,
        );
      }
      clean = next;
    }
    return undefined;
  }

  private need(name: string): { offset: number; size: number } {
    const m = this.lookup(name);
    if (!m) throw new NotFoundError(`import ${this.source}: ${name} is missing from the archive`);
    return m;
  }

  async has(name: string): Promise<boolean> {
    return this.lookup(name) !== undefined;
  }

  async size(name: string): Promise<number> {
    return this.need(name).size;
  }

  async open(name: string): Promise<Readable> {
    const m = this.need(name);
    if (m.size === 0) return createReadStream('/dev/null');
    return this.handle.createReadStream({
      start: m.offset,
      end: m.offset + m.size - 1,
      autoClose: false,
      highWaterMark: 1 << 20,
    });
  }

  async readSmall(name: string, maxBytes: number): Promise<Buffer> {
    const m = this.need(name);
    if (m.size > maxBytes) {
      throw new ResourceExhaustedError(
        `import ${this.source}: ${name} is ${m.size} bytes, over the limit of ${maxBytes}`,
      );
    }
    const b = Buffer.alloc(m.size);
    await this.handle.read(b, 0, m.size, m.offset);
    return b;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
