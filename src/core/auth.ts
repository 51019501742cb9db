/**
 * Who is calling: the domain side of authentication. Operators present bearer tokens the
 * service was configured with (only their SHA-256 hashes are kept), or a client
 * certificate whose subject is configured as an identity (mutual TLS); agents present the
 * token made for their current container start (only its hash is stored, on the agent,
 * and cleared when the container stops or exits). Nothing here knows about HTTP or proto:
 * the API layer reads the header and the permission table (src/api/auth*.ts).
 */
import { timingSafeEqual } from "node:crypto";
import type { Agent, AgentStatus } from "./agent.js";
import { AgentorchError } from "./errors.js";
import type { EventBus } from "./event-bus.js";
import type { Store } from "./ports.js";
import { hashToken, tokenMatches } from "./tokens.js";

/** Operator roles, from most to least powerful (see the permission table in src/api/auth-table.ts). */
export const ROLES = ["admin", "operator", "viewer"] as const;
export type Role = (typeof ROLES)[number];

/** A configured operator token: a name for logs, a role, and the token's SHA-256 (lowercase hex). */
export interface OperatorToken {
  name: string;
  role: Role;
  hash: string;
}

/**
 * Attributes of a certificate's subject by their short name as OpenSSL writes it (CN, O,
 * OU, C, emailAddress…), each with its values in the certificate's order (usually one).
 */
export type CertSubject = Readonly<Record<string, readonly string[]>>;

/**
 * An operator identity proved by a verified client certificate: every attribute of
 * `subject` must be in the certificate's subject with that value; attributes not listed
 * are not looked at (the client CA decides which certificates exist at all).
 */
export interface CertIdentity {
  name: string;
  role: Role;
  subject: CertSubject;
}

/**
 * What the TLS layer established about a caller's client certificate. `text` is the
 * subject as `openssl x509 -subject` shows it in its compat form ("/O=Acme/CN=ci-bot"),
 * which is also how identities are configured.
 */
export type ClientCertificate =
  | { state: "verified"; subject: CertSubject; text: string }
  | { state: "rejected"; reason: string; text: string }
  | { state: "absent" };

/** "/O=Acme/CN=ci-bot" for a subject. */
export function formatSubject(subject: CertSubject): string {
  return Object.entries(subject)
    .flatMap(([attr, values]) => values.map((v) => `/${attr}=${v}`))
    .join("");
}

/** Whether a certificate's subject has every attribute value an identity lists (names compared without case). */
export function subjectMatches(wanted: CertSubject, actual: CertSubject): boolean {
  const byName = new Map(Object.entries(actual).map(([k, v]) => [k.toUpperCase(), v]));
  return Object.entries(wanted).every(([attr, values]) => {
    const have = byName.get(attr.toUpperCase());
    return have !== undefined && values.every((v) => have.includes(v));
  });
}

/**
 * The caller of one RPC. `open` marks the anonymous admin of a service configured without
 * operator tokens (it then listens on loopback only).
 */
export type Principal =
  | { kind: "operator"; name: string; role: Role; open: boolean }
  | { kind: "agent"; agentId: string };

/** A short, secret-free description of a principal for messages and logs. */
export function describePrincipal(p: Principal): string {
  if (p.kind === "agent") return `agent "${p.agentId}"`;
  return p.open ? "anonymous caller (no tokens configured)" : `operator "${p.name}" (role ${p.role})`;
}

/** Error of a missing or unknown credential (UNAUTHENTICATED). */
export function unauthenticated(message: string): AgentorchError {
  return new AgentorchError("unauthenticated", message);
}

/** Error of a known caller doing what it may not (PERMISSION_DENIED). */
export function permissionDenied(message: string, agentId?: string): AgentorchError {
  return new AgentorchError("permission_denied", message, agentId === undefined ? {} : { agentId });
}

/**
 * The operators' credentials: bearer tokens and certificate identities. Presented tokens
 * are checked against the configured hashes; every configured hash is compared, with
 * timingSafeEqual and no early exit, so the time taken does not tell which (or whether
 * any) entry matched.
 */
export class OperatorTokens {
  private entries: readonly { token: OperatorToken; digest: Buffer }[] = [];
  private identities: readonly CertIdentity[] = [];

  constructor(tokens: readonly OperatorToken[], identities: readonly CertIdentity[] = []) {
    this.replace(tokens, identities);
  }

  /** Swaps the whole set at once (a reload on SIGHUP): calls already admitted keep going. */
  replace(tokens: readonly OperatorToken[], identities: readonly CertIdentity[] = []): void {
    this.entries = tokens.map((token) => ({ token, digest: Buffer.from(token.hash, "hex") }));
    this.identities = identities;
  }

  /** No tokens nor identities configured: the service is open to whoever reaches its (loopback) listener. */
  get open(): boolean {
    return this.entries.length === 0 && this.identities.length === 0;
  }

  /** How many tokens are configured. */
  get size(): number {
    return this.entries.length;
  }

  /** How many certificate identities are configured. */
  get identityCount(): number {
    return this.identities.length;
  }

  /** The first configured identity (in file order) that a verified certificate's subject matches. */
  findIdentity(subject: CertSubject): CertIdentity | undefined {
    return this.identities.find((id) => subjectMatches(id.subject, subject));
  }

  /** The configured token this one hashes to, or undefined. */
  find(presented: string): OperatorToken | undefined {
    const digest = Buffer.from(hashToken(presented), "hex");
    let found: OperatorToken | undefined;
    for (const e of this.entries) {
      const same = e.digest.length === digest.length && timingSafeEqual(e.digest, digest);
      if (same && found === undefined) found = e.token;
    }
    return found;
  }
}

/** Statuses in which an agent can hold a token (it is cleared on every way out of them). */
const TOKEN_STATUSES: readonly AgentStatus[] = ["starting", "running", "stopping"];

/**
 * Which running agent holds a presented token: an in-memory index hash -> agent id, built
 * from the store and kept current from the agent events on the bus, so a lookup is O(1) and
 * a token stops working as soon as the change that cleared its hash (stop, exit, loss,
 * removal) is committed. Build it before the agent service opens, so it sees every change.
 */
export class AgentTokenIndex {
  private readonly agentByHash = new Map<string, string>();
  private readonly hashByAgent = new Map<string, string>();
  private readonly unsubscribe: () => void;

  constructor(store: Pick<Store, "agentsWithStatus">, bus: EventBus) {
    // Subscribe, then read: both are synchronous, so no change falls between them.
    this.unsubscribe = bus.subscribe((event) => {
      if (event.kind !== "agent") return;
      this.set(event.id, event.type === "removed" ? "" : (event.entity as Agent).tokenHash);
    });
    for (const agent of store.agentsWithStatus(TOKEN_STATUSES)) this.set(agent.config.agentId, agent.tokenHash);
  }

  /**
   * The id of the agent whose current token this is, or undefined. The map is keyed by the
   * token's SHA-256, which tells an attacker nothing by its timing; the final check is
   * constant-time all the same.
   */
  agentFor(token: string): string | undefined {
    const agentId = this.agentByHash.get(hashToken(token));
    if (agentId === undefined) return undefined;
    const hash = this.hashByAgent.get(agentId);
    return hash !== undefined && tokenMatches(token, hash) ? agentId : undefined;
  }

  /** How many agents hold a token now. */
  get size(): number {
    return this.hashByAgent.size;
  }

  close(): void {
    this.unsubscribe();
  }

  private set(agentId: string, hash: string): void {
    const old = this.hashByAgent.get(agentId);
    if (old === hash) return;
    if (old !== undefined) {
      this.agentByHash.delete(old);
      this.hashByAgent.delete(agentId);
    }
    if (hash) {
      this.agentByHash.set(hash, agentId);
      this.hashByAgent.set(agentId, hash);
    }
  }
}
