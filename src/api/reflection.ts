/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), so `buf curl`, grpcurl and
 * Postman can call the service without the .proto files at hand. No connect-es package
 * for it is reachable here; it is short: index the served services' files (and their
 * imports) by file name and by symbol, answer with serialized FileDescriptorProtos.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescEnum, DescFile, DescMessage, DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The reflection services of both versions, over one index. */
export interface ReflectionServer {
  v1: ServiceImpl<typeof v1.ServerReflection>;
  v1alpha: ServiceImpl<typeof v1alpha.ServerReflection>;
}

/** The two reflection services themselves; pass them with the others so they are listed too. */
export const REFLECTION_SERVICES: readonly DescService[] = [v1.ServerReflection, v1alpha.ServerReflection];

/** The request and response shapes shared by v1 and v1alpha (field for field the same). */
type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;
type ResponseBody =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** An index of the files of the given services and everything they import. */
class DescriptorIndex {
  readonly files = new Map<string, DescFile>();
  readonly symbols = new Map<string, DescFile>();
  readonly messages = new Map<string, DescMessage>();
  private readonly encoded = new Map<string, Uint8Array>();

  constructor(readonly services: readonly DescService[]) {
    for (const service of services) this.addFile(service.file);
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.addFile(dep);
    const pkg = file.proto.package;
    for (const message of file.messages) this.addMessage(message);
    for (const en of file.enums) this.addEnum(en, pkg);
    for (const ext of file.extensions) this.symbols.set(ext.typeName, file);
    for (const service of file.services) {
      this.symbols.set(service.typeName, file);
      for (const method of service.methods) this.symbols.set(`${service.typeName}.${method.name}`, file);
    }
  }

  private addMessage(message: DescMessage): void {
    const file = message.file;
    this.symbols.set(message.typeName, file);
    this.messages.set(message.typeName, message);
    for (const field of message.fields) this.symbols.set(`${message.typeName}.${field.name}`, file);
    for (const oneof of message.oneofs) this.symbols.set(`${message.typeName}.${oneof.name}`, file);
    for (const nested of message.nestedMessages) this.addMessage(nested);
    for (const en of message.nestedEnums) this.addEnum(en, message.typeName);
    for (const ext of message.nestedExtensions) this.symbols.set(ext.typeName, file);
  }

  /** Enum values are scoped like their enum's siblings (C++ scoping rules). */
  private addEnum(en: DescEnum, scope: string): void {
    this.symbols.set(en.typeName, en.file);
    for (const value of en.values) this.symbols.set(scope === "" ? value.name : `${scope}.${value.name}`, en.file);
  }

  encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file.proto.name);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }

  /** The file first, then its imports transitively, each import at most once per stream. */
  withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const queue = [file];
    const seen = new Set<string>();
    while (queue.length > 0) {
      const current = queue.shift()!;
      if (seen.has(current.proto.name)) continue;
      seen.add(current.proto.name);
      if (current === file || !sent.has(current.proto.name)) {
        sent.add(current.proto.name);
        out.push(this.encode(current));
      }
      queue.push(...current.dependencies);
    }
    return out;
  }
}

function answer(index: DescriptorIndex, req: ReflectionRequest, sent: Set<string>): ResponseBody {
  const notFound = (what: string): ResponseBody => ({
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
  });
  const files = (file: DescFile): ResponseBody => ({
    case: "fileDescriptorResponse",
    value: { fileDescriptorProto: index.withDependencies(file, sent) },
  });
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.services.map((s) => ({ name: s.typeName })) } };
    case "fileByFilename": {
      const file = index.files.get(r.value);
      return file ? files(file) : notFound(`file "${r.value}"`);
    }
    case "fileContainingSymbol": {
      const file = index.symbols.get(r.value.replace(/^\./, ""));
      return file ? files(file) : notFound(`symbol "${r.value}"`);
    }
    case "fileContainingExtension":
      // None of the served files declares an extension.
      return notFound(`extension ${r.value.extensionNumber} of "${r.value.containingType}"`);
    case "allExtensionNumbersOfType": {
      const message = index.messages.get(r.value.replace(/^\./, ""));
      if (!message) return notFound(`type "${r.value}"`);
      return { case: "allExtensionNumbersResponse", value: { baseTypeName: message.typeName, extensionNumber: [] } };
    }
    default:
      return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" } };
  }
}

/** Iterates until the client closes its side or signal aborts (e.g. at server shutdown). */
async function* untilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<IteratorResult<T>>((resolve) => {
    onAbort = () => resolve({ done: true, value: undefined });
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    for (;;) {
      const pending = it.next();
      pending.catch(() => undefined); // a read still pending when we stop must not reject unhandled
      const next = await Promise.race([pending, aborted]);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort!);
    if (signal.aborted) void it.return?.()?.catch(() => undefined);
  }
}

/**
 * Creates v1 and v1alpha reflection over the given services (include REFLECTION_SERVICES).
 * services may be a function: it is read at the first request, so the list can be the
 * one a router fills as services are registered.
 */
export function createReflectionServer(services: readonly DescService[] | (() => readonly DescService[])): ReflectionServer {
  let built: DescriptorIndex | undefined;
  const index = () => (built ??= new DescriptorIndex(typeof services === "function" ? services() : services));
  return {
    v1: {
      async *serverReflectionInfo(requests: AsyncIterable<v1.ServerReflectionRequest>, ctx: HandlerContext) {
        const sent = new Set<string>();
        for await (const req of untilAborted(requests, ctx.signal)) {
          yield create(v1.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: answer(index(), req, sent),
          });
        }
      },
    },
    v1alpha: {
      async *serverReflectionInfo(requests: AsyncIterable<v1alpha.ServerReflectionRequest>, ctx: HandlerContext) {
        const sent = new Set<string>();
        for await (const req of untilAborted(requests, ctx.signal)) {
          yield create(v1alpha.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: answer(index(), req, sent),
          });
        }
      },
    },
  };
}
