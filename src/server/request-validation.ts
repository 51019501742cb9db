/**
 * Malformed binary requests are the client's fault, so they answer INVALID_ARGUMENT.
 * connect-es answers INTERNAL for every protobuf body that does not parse ("parse binary:
 * premature EOF", "illegal tag", invalid UTF-8 in a string, nesting past protobuf-es's
 * recursion limit of 100) and for a compressed frame sent without an encoding; our error
 * table keeps INTERNAL for faults of the server (a client seeing it should report a bug).
 *
 * This wraps every route's universal handler: binary request messages (gRPC, gRPC-Web,
 * Connect streaming and unary, Connect GET with encoding=proto) are decoded once here
 * before connect decodes them; a message that does not decode ends the call with
 * INVALID_ARGUMENT through connect's own error path (thrown from the request body, or,
 * for GET, answered as a Connect error). Bytes are passed on unchanged. Messages larger
 * than the read limit, and encodings we do not know, are left to connect, which already
 * answers those correctly (RESOURCE_EXHAUSTED, UNIMPLEMENTED).
 *
 * JSON messages must be valid UTF-8 (connect decodes them leniently, so a string with
 * invalid bytes was stored with U+FFFD in their place, where the same string in binary is
 * refused) and must read strictly (strict-json.ts): unknown fields and enum names are
 * INVALID_ARGUMENT naming the field and what is accepted, never dropped.
 *
 * A message over the size limit is refused here too, with RESOURCE_EXHAUSTED naming the
 * setting an operator changes (connect's own message names its internal option).
 */
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import { checkJsonRequest } from "./strict-json.js";
import { limitInfo } from "../api/error-details.js";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";

const ENVELOPED_BINARY = /^application\/(grpc(-web)?(\+proto)?|connect\+proto)(;.*)?$/i;
const ENVELOPED_JSON = /^application\/(grpc(-web)?\+json|connect\+json)(;.*)?$/i;
const UNARY_BINARY = /^application\/proto(;.*)?$/i;
const UNARY_JSON = /^application\/json(;.*)?$/i;
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });
const FLAG_COMPRESSED = 0b00000001;
/** Connect end-stream and gRPC-Web trailer frames carry no request message. */
const FLAG_NOT_A_MESSAGE = 0b10000010;

/** Replaces every handler of the router with one that checks binary request messages first. */
export function validateBinaryRequests(router: ConnectRouter, readMaxBytes: number): void {
  const handlers = router.handlers as UniversalHandler[];
  for (let i = 0; i < handlers.length; i++) handlers[i] = validating(handlers[i]!, readMaxBytes);
}

function validating(handler: UniversalHandler, readMaxBytes: number): UniversalHandler {
  const input = handler.method.input;
  const wrapped = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const contentType = req.header.get("content-type") ?? "";
    if (req.method === "GET") {
      const problem = checkGet(req.url, input, readMaxBytes);
      return problem ? connectErrorResponse(problem) : handler(req);
    }
    if (req.method === "POST" && !handler.supportedContentType(contentType)) return unsupportedMediaType(contentType);
    if (!isByteStream(req.body)) return handler(req);
    const binary = (data: Uint8Array) => decode(input, data);
    const json = (data: Uint8Array) => checkJsonRequest(input, utf8(data));
    const declared = Number(req.header.get("content-length") ?? NaN);
    if ((UNARY_BINARY.test(contentType) || UNARY_JSON.test(contentType)) && declared > readMaxBytes) {
      return connectErrorResponse(tooLarge(declared, readMaxBytes));
    }
    const enveloped = ENVELOPED_BINARY.test(contentType) ? binary : ENVELOPED_JSON.test(contentType) ? json : undefined;
    if (enveloped) {
      const encoding = req.header.get("grpc-encoding") ?? req.header.get("connect-content-encoding");
      return handler({ ...req, body: checkEnvelopes(req.body, enveloped, encoding, readMaxBytes) });
    }
    const whole = UNARY_BINARY.test(contentType) ? binary : UNARY_JSON.test(contentType) ? json : undefined;
    if (whole) return handler({ ...req, body: checkWhole(req.body, whole, req.header.get("content-encoding"), readMaxBytes) });
    return handler(req);
  };
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** Throws INVALID_ARGUMENT unless data decodes as one message of desc. */
function decode(desc: DescMessage, data: Uint8Array): void {
  try {
    fromBinary(desc, data);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConnectError(`invalid ${desc.typeName}: ${why}`, Code.InvalidArgument);
  }
}

/** The text of a JSON message; INVALID_ARGUMENT unless data is UTF-8. */
function utf8(data: Uint8Array): string {
  try {
    return STRICT_UTF8.decode(data);
  } catch {
    throw new ConnectError("the JSON request is not valid UTF-8", Code.InvalidArgument);
  }
}

/** The size error, naming the setting (connect's own names its readMaxBytes option). */
export function tooLarge(size: number, readMaxBytes: number): ConnectError {
  return new ConnectError(
    `request message of ${size} bytes is larger than the server's limit of ${readMaxBytes} bytes (AGENTORCH_MAX_REQUEST_BYTES)`,
    Code.ResourceExhausted,
    undefined,
    [limitInfo("REQUEST_TOO_LARGE", "AGENTORCH_MAX_REQUEST_BYTES", readMaxBytes)],
  );
}

/** The decompressed message, undefined when the encoding is one connect will refuse itself, or INVALID_ARGUMENT. */
function decompress(data: Uint8Array, encoding: string | null, readMaxBytes: number): Uint8Array | undefined {
  const name = (encoding ?? "identity").trim().toLowerCase();
  if (name === "identity") throw new ConnectError("protocol error: a compressed message without a message encoding", Code.InvalidArgument);
  try {
    if (name === "gzip") return gunzipSync(data, { maxOutputLength: readMaxBytes });
    if (name === "br") return brotliDecompressSync(data, { maxOutputLength: readMaxBytes });
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new ConnectError(
        `the ${name} message decompresses to more than the server's limit of ${readMaxBytes} bytes (AGENTORCH_MAX_REQUEST_BYTES)`,
        Code.ResourceExhausted,
        undefined,
        [limitInfo("REQUEST_TOO_LARGE", "AGENTORCH_MAX_REQUEST_BYTES", readMaxBytes)],
      );
    }
    throw new ConnectError(`the ${name} message could not be decompressed`, Code.InvalidArgument);
  }
  return undefined; // an unknown encoding: connect answers UNIMPLEMENTED
}

/** Passes the body through, checking each complete enveloped message as it arrives. */
async function* checkEnvelopes(body: AsyncIterable<Uint8Array>, check: (data: Uint8Array) => void, encoding: string | null, readMaxBytes: number): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let queued = 0;
  for await (const chunk of body) {
    queue.push(chunk);
    queued += chunk.length;
    while (queued >= 5) {
      const head = concat(...take(queue, 5, false));
      const length = new DataView(head.buffer, head.byteOffset + 1, 4).getUint32(0);
      if (length > readMaxBytes) throw tooLarge(length, readMaxBytes);
      if (queued < 5 + length) break;
      const parts = take(queue, 5 + length, true);
      queued -= 5 + length;
      if (!(head[0]! & FLAG_NOT_A_MESSAGE)) {
        const data = concat(...parts).subarray(5);
        const message = head[0]! & FLAG_COMPRESSED ? decompress(data, encoding, readMaxBytes) : data;
        if (message !== undefined) check(message);
      }
      yield* parts;
    }
  }
  // A partial envelope at the end: connect reports it (INVALID_ARGUMENT, "incomplete envelope").
  yield* queue;
}

/** The first n bytes of the queued chunks as slices; removed from the queue when consume. */
function take(queue: Uint8Array[], n: number, consume: boolean): Uint8Array[] {
  const out: Uint8Array[] = [];
  let left = n;
  let i = 0;
  while (left > 0) {
    const c = queue[i]!;
    if (c.length <= left) {
      out.push(c);
      left -= c.length;
      i++;
    } else {
      out.push(c.subarray(0, left));
      if (consume) queue[i] = c.subarray(left);
      left = 0;
    }
  }
  if (consume) queue.splice(0, i);
  return out;
}

/** Connect unary: the whole body is one message. */
async function* checkWhole(body: AsyncIterable<Uint8Array>, check: (data: Uint8Array) => void, encoding: string | null, readMaxBytes: number): AsyncGenerator<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size > readMaxBytes) throw tooLarge(size, readMaxBytes);
  }
  const whole = concat(...chunks);
  const name = (encoding ?? "identity").trim().toLowerCase();
  const message = name === "identity" ? whole : decompress(whole, name, readMaxBytes);
  if (message !== undefined) check(message);
  yield whole;
}

/** Connect GET with encoding=proto: the message is in the query. Returns the error to answer, if any. */
function checkGet(url: string, desc: DescMessage, readMaxBytes: number): ConnectError | undefined {
  let params: URLSearchParams;
  try {
    params = new URL(url, "http://localhost").searchParams;
  } catch {
    return undefined;
  }
  if (params.get("compression") || !params.has("message")) return undefined;
  if (params.get("encoding") === "json") {
    let text: string;
    try {
      if (params.get("base64") === "1") {
        text = utf8(base64Decode(params.get("message") ?? ""));
      } else {
        // URLSearchParams decodes invalid UTF-8 to U+FFFD; decodeURIComponent refuses it.
        const raw = /(?:^|[?&])message=([^&]*)/.exec(url)?.[1] ?? "";
        try {
          text = decodeURIComponent(raw.replace(/\+/g, " "));
        } catch {
          throw new ConnectError("the JSON request is not valid UTF-8", Code.InvalidArgument);
        }
      }
      checkJsonRequest(desc, text);
      return undefined;
    } catch (err) {
      return err instanceof ConnectError ? err : new ConnectError("message is not valid base64", Code.InvalidArgument);
    }
  }
  if (params.get("encoding") !== "proto") return undefined;
  const text = params.get("message") ?? "";
  let bytes: Uint8Array;
  try {
    bytes = params.get("base64") === "1" ? base64Decode(text) : new TextEncoder().encode(text);
  } catch {
    return new ConnectError("message is not valid base64", Code.InvalidArgument);
  }
  if (bytes.length > readMaxBytes) return tooLarge(bytes.length, readMaxBytes);
  try {
    decode(desc, bytes);
    return undefined;
  } catch (err) {
    return err as ConnectError;
  }
}

const ACCEPTED_CONTENT_TYPES = [
  "application/grpc (+proto, +json)",
  "application/grpc-web (+proto, +json)",
  "application/connect+proto",
  "application/connect+json",
  "application/proto",
  "application/json",
];

/** 415 with a body that says what is accepted (connect answers an empty 415). */
function unsupportedMediaType(contentType: string): UniversalServerResponse {
  const got = contentType ? `"${contentType}"` : "none";
  const body = new TextEncoder().encode(
    `unsupported content-type ${got}; POST one of: ${ACCEPTED_CONTENT_TYPES.join(", ")} (Connect unary JSON: application/json)\n`,
  );
  return {
    status: 415,
    header: new Headers({ "content-type": "text/plain; charset=utf-8", "content-length": String(body.byteLength) }),
    body: (async function* () {
      yield body;
    })(),
  };
}

/** A Connect unary error response (what connect itself answers for an error). */
function connectErrorResponse(err: ConnectError): UniversalServerResponse {
  const body = errorToJsonBytes(err, {});
  return {
    status: codeToHttpStatus(err.code),
    header: new Headers({ "content-type": "application/json", "content-length": String(body.byteLength) }),
    body: (async function* () {
      yield body;
    })(),
  };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
