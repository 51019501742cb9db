/**
 * The front door of every RPC, before connect reads a byte of its body:
 * - the credentials (and whether the caller may call the method at all) are checked from
 *   the headers; a refused call is answered at once and its body is never read (the
 *   listener drains and drops what the client still sends);
 * - a request message must arrive within AGENTORCH_REQUEST_BODY_TIMEOUT_MS once it has
 *   begun (for unary and server-streaming calls: from the start of the call to the end of
 *   its body), else DEADLINE_EXCEEDED;
 * - the bytes of all request messages being received at once are bounded by
 *   AGENTORCH_MAX_INFLIGHT_BODY_BYTES; a call that would pass it answers RESOURCE_EXHAUSTED.
 * Errors are thrown from the request body, so connect answers them in the call's protocol.
 * Like request-validation.ts, this wraps every route's universal handler.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter, ContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";

const ENVELOPED = /^application\/(grpc|grpc-web|connect)(\+|;|$)/i;

/** The bytes of request messages being received, across every call of the server. */
export class BodyBudget {
  private used = 0;
  constructor(readonly maxBytes: number) {}
  /** Takes n bytes; false (nothing taken) when that would pass the budget. */
  take(n: number): boolean {
    if (this.used + n > this.maxBytes) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
  inUse(): number {
    return this.used;
  }
}

export interface RequestGuardOptions {
  /** The refusal to answer from the headers alone, or undefined. */
  checkHeaders(req: { header: Headers; contextValues?: ContextValues }, service: string, method: string): ConnectError | undefined;
  bodyTimeoutMs: number;
  budget: BodyBudget;
}

/** Replaces every handler of the router with one that guards its request first. */
export function guardRequests(router: ConnectRouter, opts: RequestGuardOptions): void {
  const handlers = router.handlers as UniversalHandler[];
  for (let i = 0; i < handlers.length; i++) handlers[i] = guarding(handlers[i]!, opts);
}

function guarding(handler: UniversalHandler, opts: RequestGuardOptions): UniversalHandler {
  const streamingInput = handler.method.methodKind === "client_streaming" || handler.method.methodKind === "bidi_streaming";
  const wrapped = (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const refused = opts.checkHeaders(req, handler.service.typeName, handler.method.name);
    if (refused) return handler({ ...req, body: refuse(refused) });
    if (!isByteStream(req.body)) return handler(req);
    const enveloped = ENVELOPED.test(req.header.get("content-type") ?? "");
    return handler({ ...req, body: guardBody(req.body, { ...opts, enveloped, streamingInput }) });
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

// eslint-disable-next-line require-yield
async function* refuse(err: ConnectError): AsyncGenerator<Uint8Array> {
  throw err;
}

interface BodyOptions {
  bodyTimeoutMs: number;
  budget: BodyBudget;
  enveloped: boolean;
  streamingInput: boolean;
}

/**
 * Passes the body through, holding budget for the bytes of the message being received
 * (for enveloped protocols: released as each envelope completes; else: the whole body),
 * and failing the call when a begun message stalls past the timeout.
 */
async function* guardBody(body: AsyncIterable<Uint8Array>, opts: BodyOptions): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  let held = 0; // budget taken for the message being received
  // Enveloped: bytes still to come of the current envelope (header included); 0 between envelopes.
  let header: number[] = [];
  let rest = 0;
  let deadline = opts.streamingInput ? undefined : Date.now() + opts.bodyTimeoutMs;
  try {
    for (;;) {
      const r = await nextBefore(it, deadline, opts.bodyTimeoutMs);
      if (r.done === true) return;
      const chunk = r.value;
      if (!opts.budget.take(chunk.length)) {
        throw new ConnectError(
          `the server is receiving too many request bodies at once (AGENTORCH_MAX_INFLIGHT_BODY_BYTES is ${opts.budget.maxBytes} bytes); retry later`,
          Code.ResourceExhausted,
        );
      }
      held += chunk.length;
      if (opts.enveloped) {
        let messageEnded = false;
        for (let i = 0; i < chunk.length; ) {
          if (rest === 0 && header.length < 5) {
            header.push(chunk[i++]!);
            if (header.length === 5) {
              rest = ((header[1]! << 24) >>> 0) + (header[2]! << 16) + (header[3]! << 8) + header[4]!;
              header = [];
              if (rest === 0) messageEnded = true;
            }
            continue;
          }
          const n = Math.min(rest, chunk.length - i);
          i += n;
          rest -= n;
          if (rest === 0) messageEnded = true;
        }
        const midMessage = rest > 0 || header.length > 0;
        if (messageEnded && !midMessage) {
          opts.budget.give(held);
          held = 0;
        }
        if (opts.streamingInput) deadline = midMessage ? (deadline ?? Date.now() + opts.bodyTimeoutMs) : undefined;
      }
      yield chunk;
    }
  } finally {
    opts.budget.give(held);
  }
}

/** The next chunk, or DEADLINE_EXCEEDED once `deadline` passes (none: wait as long as it takes). */
async function nextBefore(it: AsyncIterator<Uint8Array>, deadline: number | undefined, timeoutMs: number): Promise<IteratorResult<Uint8Array>> {
  if (deadline === undefined) return it.next();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ConnectError(`the request body did not arrive within ${timeoutMs} ms (AGENTORCH_REQUEST_BODY_TIMEOUT_MS)`, Code.DeadlineExceeded),
        ),
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([it.next(), late]);
  } finally {
    clearTimeout(timer);
  }
}
