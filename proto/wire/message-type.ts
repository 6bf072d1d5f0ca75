/**
 * A message of the API as the code sees it at run time: its fields (what the object converter and
 * the diff walk) and its codec. proto/codegen writes one MessageType per message of
 * proto/skiff/v1/*.proto, and one ServiceType per service, into proto/gen/messages.ts, with an
 * encoder and a decoder generated for each message: nothing at run time reads the .proto files
 * or builds code from them.
 *
 * The codec's shape of a message (WireMessage), the same both ways:
 * - fields under their camelCase .proto names (`podIp`; the JSON name, `podIP`, is FieldInfo's);
 * - a field that is not set is absent; a proto3 field without presence that holds its zero value
 *   ('', 0, false) is not set, neither written nor read back; `optional` fields and oneof members
 *   keep their zero;
 * - int32, uint32 and int64 are numbers (int64 read as the nearest number: exact up to 2^53), bool a
 *   boolean, bytes base64 text (a Uint8Array is written too);
 * - repeated fields are arrays and maps plain objects, absent when empty; a message field is a
 *   plain object, or, when writing, its encoding as a Uint8Array, copied in as it is;
 * - of a oneof, the member read last is kept (the others are removed), as protobuf says;
 * - fields the decoder does not know are skipped, so they are not kept through a decode and
 *   encode.
 * It is what protobufjs's `toObject` gives with { longs: Number, bytes: String, defaults: false,
 * arrays: false, objects: false, oneofs: false }; proto/codegen/render-messages.test.ts holds the two
 * together over every message.
 */
import { Reader, type Decoder } from './reader.js';
import { Writer, type Encoder } from './writer.js';

/** A message in the codec's shape. */
export type WireMessage = Record<string, unknown>;

/** The scalar types the codecs read and write (the generator refuses a .proto using another). */
export type ScalarType = 'string' | 'bool' | 'int32' | 'uint32' | 'int64' | 'bytes';

export interface FieldInfo {
  /** camelCase of the .proto name: the key in a WireMessage. */
  readonly name: string;
  /** The name in the Kubernetes JSON shape: the .proto's json_name, else `name`. */
  readonly jsonName: string;
  /** The field number. */
  readonly id: number;
  /** A scalar type, or the message type of the field (of a map's values, of a list's items). */
  readonly type: ScalarType | MessageType;
  /** A list (`repeated`, not a map). */
  readonly repeated: boolean;
  /** A map<string, type>. */
  readonly map: boolean;
  /** proto3 `optional` or a oneof member: its zero value is a value (unset and zero differ). */
  readonly explicitPresence: boolean;
}

export interface MessageType {
  /** The message's name in skiff.v1 ("Pod", "ObjectMeta", "Object"). */
  readonly name: string;
  /** Every field, in the order the .proto declares them. */
  readonly fields: readonly FieldInfo[];
  /** The field of that (camelCase) name. */
  field(name: string): FieldInfo | undefined;
  /** The message's wire encoding (fields in number order, as protoc and protobufjs write them). */
  encode(message: WireMessage): Buffer;
  /** Reads the wire encoding of a message; throws RangeError for bytes that are not one. */
  decode(bytes: Uint8Array): WireMessage;
}

export interface MethodType {
  readonly name: string;
  /** `/skiff.v1.Api/List`: the HTTP/2 path of a gRPC call. */
  readonly path: string;
  readonly request: MessageType;
  readonly response: MessageType;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

export interface ServiceType {
  /** `skiff.v1.Api`. */
  readonly name: string;
  readonly methods: Readonly<Record<string, MethodType>>;
}

// ---------------------------------------------------------------------------------------------
// What proto/gen/messages.ts builds its types with

/** Field flags, for `field`. */
export const REPEATED = 1;
export const MAP = 2;
export const PRESENCE = 4;

/** A FieldInfo; jsonName defaults to `name`. */
export function field(
  name: string,
  id: number,
  type: ScalarType | MessageType,
  flags = 0,
  jsonName = name,
): FieldInfo {
  return Object.freeze({
    name,
    jsonName,
    id,
    type,
    repeated: (flags & REPEATED) !== 0,
    map: (flags & MAP) !== 0,
    explicitPresence: (flags & PRESENCE) !== 0,
  });
}

/** Unsets the other members of a oneof whose member `names` does not include the one just read. */
export function clearOneofMembers(message: WireMessage, names: readonly string[]): void {
  for (const name of names) if (message[name] !== undefined) delete message[name];
}

/** One writer for every encode: encodes are synchronous and never nest. */
const writer = new Writer();

class GeneratedMessageType implements MessageType {
  private described: readonly FieldInfo[] | undefined;
  private byName: Map<string, FieldInfo> | undefined;

  constructor(
    readonly name: string,
    private readonly encodeFields: Encoder,
    private readonly decodeFields: Decoder,
    /** The fields, made on first use: they name other types, which may be defined later. */
    private readonly describe: () => FieldInfo[],
  ) {}

  get fields(): readonly FieldInfo[] {
    return (this.described ??= Object.freeze(this.describe()));
  }

  field(name: string): FieldInfo | undefined {
    this.byName ??= new Map(this.fields.map((each) => [each.name, each]));
    return this.byName.get(name);
  }

  encode(message: WireMessage): Buffer {
    try {
      this.encodeFields(message, writer);
    } catch (err) {
      writer.reset();
      throw err;
    }
    return writer.finish();
  }

  decode(bytes: Uint8Array): WireMessage {
    return this.decodeFields(new Reader(bytes));
  }
}

export function message(
  name: string,
  encodeFields: Encoder,
  decodeFields: Decoder,
  describe: () => FieldInfo[],
): MessageType {
  return new GeneratedMessageType(name, encodeFields, decodeFields, describe);
}

export function service(
  name: string,
  methods: Array<[name: string, request: MessageType, response: MessageType, flags?: number]>,
): ServiceType {
  return Object.freeze({
    name,
    methods: Object.freeze(
      Object.fromEntries(
        methods.map(([method, request, response, flags = 0]) => [
          method,
          Object.freeze({
            name: method,
            path: `/${name}/${method}`,
            request,
            response,
            requestStream: (flags & REQUEST_STREAM) !== 0,
            responseStream: (flags & RESPONSE_STREAM) !== 0,
          }),
        ]),
      ),
    ),
  });
}

/** Method flags, for `service`. */
export const REQUEST_STREAM = 1;
export const RESPONSE_STREAM = 2;
