/**
 * Authentication and authorization of every RPC, as one Connect interceptor.
 *
 * Where a call came from decides who may make it:
 * - TCP (the service's port): operators, with `authorization: Bearer <token>` matching a
 *   configured token, or (mutual TLS) a verified client certificate whose subject matches
 *   a configured identity; its role must grant the permission the method needs
 *   (./auth-table.ts). A token, when sent, decides; a client certificate that failed
 *   verification is refused whatever else is sent, and so is a call without a certificate
 *   when they are required. With no tokens nor identities configured (loopback only, see
 *   config) every caller is an anonymous admin.
 * - The agent socket (mounted into containers): agents only, with the token of their
 *   current container start; only the methods the table opens to agents, and only as
 *   themselves. Operator tokens are refused there: the socket is for agents.
 * Health and reflection need no token anywhere. Missing or unknown credentials answer
 * UNAUTHENTICATED; a known caller without the right answers PERMISSION_DENIED naming the
 * method and the role or agent. Tokens and hashes are never logged or echoed.
 */
import { createContextKey, createContextValues } from "@connectrpc/connect";
import type { ConnectError, ContextValues, HandlerContext, Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import { describePrincipal, permissionDenied, unauthenticated } from "../core/auth.js";
import type { AgentTokenIndex, ClientCertificate, OperatorTokens, Principal } from "../core/auth.js";
import { isAgentorchError } from "../core/errors.js";
import type { Logger } from "../core/ports.js";
import { OPEN_SERVICES, roleMay, RPC_RULES } from "./auth-table.js";
import type { MethodRule } from "./auth-table.js";
import { toConnectError } from "./errors.js";

/** The caller of the current RPC (set by the auth interceptor; undefined for health and reflection). */
export const PRINCIPAL = createContextKey<Principal | undefined>(undefined, { description: "agentorch principal" });

/** Where a call arrived: the service's TCP port or the agent socket. */
export type Origin = "tcp" | "agent-socket";
const ORIGIN = createContextKey<Origin>("tcp", { description: "agentorch call origin" });
/** The client certificate of the call's TLS connection; undefined on cleartext connections. */
const CLIENT_CERT = createContextKey<ClientCertificate | undefined>(undefined, { description: "agentorch client certificate" });

/** The caller of a handler's call, as the auth interceptor established it. */
export function principalOf(ctx: Pick<HandlerContext, "values">): Principal | undefined {
  return ctx.values.get(PRINCIPAL);
}

/** Header an agent may add to say who it is; it must then be the holder of the token. */
export const AGENT_ID_HEADER = "x-agentorch-agent-id";

/**
 * The token of an `authorization: Bearer <token>` header value, or undefined when the value
 * is absent or not of that form (the scheme is case-insensitive, as HTTP says).
 */
export function parseBearer(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^Bearer[ \t]+([^\s,]+)[ \t]*$/i.exec(value);
  return m?.[1];
}

/**
 * An operator from what a TCP call presents: its bearer token and its TLS client
 * certificate. Throws UNAUTHENTICATED, saying what is missing or wrong. Also used for
 * GET /metrics.
 */
export function authenticateOperator(
  operators: OperatorTokens,
  presented: { token: string | undefined; certificate: ClientCertificate | undefined },
  certificateRequired: boolean,
): Principal {
  const { token, certificate: cert } = presented;
  if (cert?.state === "rejected") {
    throw unauthenticated(`client certificate ${cert.text} rejected: ${cert.reason}; use a valid certificate issued by the service's client CA`);
  }
  if (certificateRequired && cert?.state !== "verified") {
    throw unauthenticated(
      "this service requires a client certificate (mutual TLS) and none was presented: connect with a certificate and key issued by its client CA " +
        "(agentorch --tls-cert/--tls-key, grpc.credentials.createSsl(ca, key, cert), buf curl --cert/--key)",
    );
  }
  if (operators.open) return { kind: "operator", name: "anonymous", role: "admin", open: true };
  if (token !== undefined) {
    const found = operators.find(token);
    if (found === undefined) throw unauthenticated("unknown bearer token");
    return { kind: "operator", name: found.name, role: found.role, open: false };
  }
  if (cert?.state === "verified") {
    const id = operators.findIdentity(cert.subject);
    if (id === undefined) {
      throw unauthenticated(
        `client certificate ${cert.text} is verified but not mapped to an operator identity: ` +
          `send a bearer token, or have the service list it (an entry NAME:ROLE:cert:${cert.text} in AGENTORCH_TOKENS_FILE)`,
      );
    }
    return { kind: "operator", name: id.name, role: id.role, open: false };
  }
  throw unauthenticated("missing bearer token: send 'authorization: Bearer <token>'");
}

export interface AuthDeps {
  /** Configured operator tokens (hashes; replaceable at run time); none: the TCP listener is open (loopback only). */
  operatorTokens: OperatorTokens;
  /** Current agent tokens. */
  agentTokens: Pick<AgentTokenIndex, "agentFor">;
  logger: Logger;
  /** TLS client certificates on the TCP listener: where a request's is found, and whether calls need one. */
  clientCertificates?: { of(req: object): ClientCertificate | undefined; required: boolean };
}

/** The auth pieces the composition root wires in; see createAuth. */
export interface Auth {
  /** Authenticates and authorizes each call; add it to the Connect handler's interceptors. */
  readonly interceptor: Interceptor;
  /**
   * Wraps connectNodeAdapter's contextValues function so that calls received through
   * agentSocketHandler are known as agent calls.
   */
  contextValues<R extends object>(inner?: (req: R) => ContextValues): (req: R) => ContextValues;
  /** The handler to serve on the agent socket: the same handler, its requests marked as the socket's. */
  agentSocketHandler<R extends object, S>(handler: (req: R, res: S) => void): (req: R, res: S) => void;
  /**
   * What can be checked from the headers alone, before any byte of the body is read: the
   * credentials, and whether the caller may call the method at all. The refusal to answer,
   * or undefined (the interceptor still checks everything once the message is read).
   */
  checkHeaders(req: AuthRequest, service: string, method: string): ConnectError | undefined;
}

type AnyRequest = UnaryRequest | StreamRequest;
/** What authentication reads of a call: its headers, and the context values (origin, client certificate). */
type AuthRequest = { header: Headers; contextValues?: ContextValues };

/** Creates the auth interceptor and the helpers that tell it where a call came from. */
export function createAuth(deps: AuthDeps): Auth {
  const operators = deps.operatorTokens;
  const log = deps.logger.child({ component: "auth" });
  const fromSocket = new WeakSet<object>();
  const certs = deps.clientCertificates;
  if (operators.open) {
    log.warn(
      {},
      "no operator tokens configured (AGENTORCH_TOKENS, AGENTORCH_TOKENS_FILE): every caller that reaches the loopback listener has full access",
    );
  } else {
    log.info({ tokens: operators.size, certIdentities: operators.identityCount }, "operator tokens configured");
  }

  function authenticate(req: AuthRequest, origin: Origin): Principal {
    const token = parseBearer(req.header.get("authorization"));
    if (origin === "agent-socket") {
      if (token === undefined) throw unauthenticated("missing agent token: send 'authorization: Bearer $AGENTORCH_TOKEN'");
      const agentId = deps.agentTokens.agentFor(token);
      if (agentId === undefined) {
        throw unauthenticated("unknown or revoked agent token: the agent socket accepts only the AGENTORCH_TOKEN of a running agent");
      }
      const claimed = req.header.get(AGENT_ID_HEADER);
      if (claimed !== null && claimed !== agentId) throw unauthenticated(`the agent token does not belong to the agent named in ${AGENT_ID_HEADER}`);
      return { kind: "agent", agentId };
    }
    return authenticateOperator(operators, { token, certificate: req.contextValues?.get(CLIENT_CERT) }, certs?.required ?? false);
  }

  /** Checks the call; returns the request to pass on (a stream's input re-wrapped once read). */
  async function authorize(req: AnyRequest, method: string, rule: MethodRule | undefined, principal: Principal): Promise<AnyRequest> {
    if (rule === undefined) throw permissionDenied(`${method} is not in the permission table; nobody may call it`);
    if (principal.kind === "operator") {
      if (!roleMay(principal.role, rule.permission)) {
        throw permissionDenied(`role ${principal.role} may not call ${method} (it needs the ${rule.permission} permission)`);
      }
      return req;
    }
    const { agentId } = principal;
    const access = rule.agent;
    if (access === undefined) throw permissionDenied(`agent "${agentId}" may not call ${method}`, agentId);
    if (access.kind === "any") return req;
    let message: unknown;
    let passOn = req;
    if (req.stream) {
      const peeked = await peek(req.message);
      message = peeked.first;
      passOn = { ...req, message: peeked.input };
    } else {
      message = req.message;
    }
    const actsAs = access.pick(message) ?? "";
    if (actsAs !== agentId) {
      throw permissionDenied(
        `agent "${agentId}" may call ${method} only as itself (${access.field} is ${actsAs === "" ? "empty" : `"${actsAs}"`})`,
        agentId,
      );
    }
    return passOn;
  }

  const interceptor: Interceptor = (next) => async (req) => {
    if (OPEN_SERVICES.has(req.service.typeName)) return next(req);
    const method = `${req.service.typeName}/${req.method.name}`;
    const origin = req.contextValues.get(ORIGIN);
    let principal: Principal | undefined;
    let passOn: AnyRequest;
    try {
      principal = authenticate(req, origin);
      req.contextValues.set(PRINCIPAL, principal);
      passOn = await authorize(req, method, RPC_RULES[method], principal);
    } catch (err) {
      // Only refusals are ours to report; e.g. a stream's unreadable input passes as it is.
      if (!isAgentorchError(err)) throw err;
      const e = toConnectError(err, log);
      log.info({ method, origin, caller: principal ? describePrincipal(principal) : "unauthenticated", reason: e.rawMessage }, "call refused");
      throw e;
    }
    return next(passOn as typeof req);
  };

  return {
    interceptor,
    checkHeaders(req, service, methodName) {
      if (OPEN_SERVICES.has(service)) return undefined;
      const method = `${service}/${methodName}`;
      const origin = req.contextValues?.get(ORIGIN) ?? "tcp";
      let principal: Principal | undefined;
      try {
        principal = authenticate(req, origin);
        const rule = RPC_RULES[method];
        if (rule === undefined) throw permissionDenied(`${method} is not in the permission table; nobody may call it`);
        if (principal.kind === "operator" && !roleMay(principal.role, rule.permission)) {
          throw permissionDenied(`role ${principal.role} may not call ${method} (it needs the ${rule.permission} permission)`);
        }
        if (principal.kind === "agent" && rule.agent === undefined) throw permissionDenied(`agent "${principal.agentId}" may not call ${method}`, principal.agentId);
        return undefined;
      } catch (err) {
        if (!isAgentorchError(err)) throw err;
        const e = toConnectError(err, log);
        log.info({ method, origin, caller: principal ? describePrincipal(principal) : "unauthenticated", reason: e.rawMessage }, "call refused before its body was read");
        return e;
      }
    },
    contextValues(inner) {
      return (req) => {
        const values = inner ? inner(req) : createContextValues();
        if (fromSocket.has(req)) return values.set(ORIGIN, "agent-socket");
        const cert = certs?.of(req);
        return cert === undefined ? values : values.set(CLIENT_CERT, cert);
      };
    },
    agentSocketHandler(handler) {
      return (req, res) => {
        fromSocket.add(req);
        handler(req, res);
      };
    },
  };
}

/**
 * Reads the first input message of a stream and gives back an input that yields the same
 * messages (that one, then the rest), so connect still checks a server stream got exactly one.
 */
async function peek<T>(input: AsyncIterable<T>): Promise<{ first: T | undefined; input: AsyncIterable<T> }> {
  const it = input[Symbol.asyncIterator]();
  const head = await it.next();
  async function* replay(): AsyncGenerator<T> {
    if (head.done === true) return;
    yield head.value;
    for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
  }
  return { first: head.done === true ? undefined : head.value, input: replay() };
}
