/**
 * Responses shared by many streams. Every watcher of a change receives the same committed
 * event object (see EventBus), so its response is built once and, for binary protocols,
 * serialized once: with 500 watchers, one conversion and one encoding per change instead
 * of 500 of each.
 *
 * The encoded form is a message of the same type whose only content is its own encoding,
 * held as one unknown field: protobuf-es writes unknown fields verbatim (writeUnknownFields
 * is on by default), so each stream copies bytes instead of walking the message, and the
 * wire carries exactly what toBinary produced. JSON carries no unknown fields: a stream in
 * a JSON protocol gets the plain message.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";

interface Entry<M> {
  version: string;
  plain: M;
  encoded?: M;
}

export class SharedResponses<Desc extends DescMessage> {
  private readonly cache = new WeakMap<object, Entry<MessageShape<Desc>>>();

  constructor(private readonly schema: Desc) {}

  /**
   * The response for key (an object belonging to one event), built by build() once per
   * version (e.g. the event's revision and type, in case one object serves several).
   */
  get(key: object | undefined, version: string, binary: boolean, build: () => MessageShape<Desc>): MessageShape<Desc> {
    if (key === undefined) return build();
    let entry = this.cache.get(key);
    if (entry?.version !== version) {
      entry = { version, plain: build() };
      this.cache.set(key, entry);
    }
    if (!binary) return entry.plain;
    entry.encoded ??= preEncoded(this.schema, entry.plain);
    return entry.encoded;
  }
}

/** A message that serializes to exactly the bytes of message, without walking it again. */
export function preEncoded<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): MessageShape<Desc> {
  const bytes = toBinary(schema, message);
  if (bytes.length === 0) return message;
  // One unknown field: the first tag, then the rest of the bytes raw (writeFields writes
  // tag(no, wireType) and then the data as is, so the result is byte-for-byte the same).
  const reader = new BinaryReader(bytes);
  const [no, wireType] = reader.tag();
  const shell = create(schema);
  shell.$unknown = [{ no, wireType, data: bytes.subarray(reader.pos) }];
  return shell;
}

/** Whether a call's messages are in a binary encoding (gRPC, gRPC-Web, Connect with proto). */
export function isBinaryCall(requestHeader: Headers): boolean {
  const type = (requestHeader.get("content-type") ?? "").split(";", 1)[0]!.trim().toLowerCase();
  return !type.endsWith("json");
}
