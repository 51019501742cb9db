/**
 * What a TLS connection's handshake said about the client's certificate, in the domain's
 * terms (ClientCertificate): verified with its subject, rejected with a reason a user can
 * act on, or absent. The listener records it once per connection (the TLS socket for
 * HTTP/1.1, the session for HTTP/2); requests find it through clientCertificateOf.
 */
import type http from "node:http";
import type http2 from "node:http2";
import type tls from "node:tls";
import { formatSubject } from "../core/auth.js";
import type { CertSubject, ClientCertificate } from "../core/auth.js";

/** Connection (TLS socket or HTTP/2 session) -> its client certificate. */
const peers = new WeakMap<object, ClientCertificate>();

/** Remembers the client certificate of a connection (a TLS socket or the HTTP/2 session over one). */
export function recordClientCertificate(connection: object, cert: ClientCertificate): void {
  peers.set(connection, cert);
}

/** The client certificate of the connection a request came on; undefined for cleartext connections. */
export function clientCertificateOf(req: http.IncomingMessage | http2.Http2ServerRequest | object): ClientCertificate | undefined {
  const h2 = (req as Partial<http2.Http2ServerRequest>).stream?.session;
  if (h2 !== undefined) return peers.get(h2);
  const socket = (req as Partial<http.IncomingMessage>).socket;
  if (socket === undefined) return undefined;
  return peers.get(socket) ?? (isTlsSocket(socket) ? describeClientCertificate(socket) : undefined);
}

function isTlsSocket(socket: object): socket is tls.TLSSocket {
  return (socket as { encrypted?: unknown }).encrypted === true && typeof (socket as tls.TLSSocket).getPeerCertificate === "function";
}

/** What OpenSSL's verification codes mean for the one who holds the certificate. */
const REASONS: Record<string, string> = {
  CERT_HAS_EXPIRED: "it has expired",
  CERT_NOT_YET_VALID: "it is not valid yet (check the clocks)",
  UNABLE_TO_GET_ISSUER_CERT: "it is not issued by a CA the service trusts for clients (AGENTORCH_TLS_CLIENT_CA)",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "it is not issued by a CA the service trusts for clients (AGENTORCH_TLS_CLIENT_CA)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "it is not issued by a CA the service trusts for clients (AGENTORCH_TLS_CLIENT_CA)",
  DEPTH_ZERO_SELF_SIGNED_CERT: "it is self-signed, not issued by the service's client CA (AGENTORCH_TLS_CLIENT_CA)",
  SELF_SIGNED_CERT_IN_CHAIN: "its chain ends in a CA the service does not trust for clients (AGENTORCH_TLS_CLIENT_CA)",
  CERT_SIGNATURE_FAILURE: "its signature does not verify",
  INVALID_PURPOSE: "it is not meant for TLS client authentication (extendedKeyUsage lacks clientAuth)",
  CERT_REVOKED: "it has been revoked",
};

/** Reads a TLS socket's client certificate after its handshake (tls.Server with requestCert, not rejecting). */
export function describeClientCertificate(socket: tls.TLSSocket): ClientCertificate {
  const peer = socket.getPeerCertificate();
  if (peer === null || peer === undefined || Object.keys(peer).length === 0) return { state: "absent" };
  const subject = subjectOf(peer.subject as unknown as Record<string, string | string[]> | undefined);
  const text = formatSubject(subject) || "(empty subject)";
  if (socket.authorized) return { state: "verified", subject, text };
  const code = String(socket.authorizationError ?? "UNKNOWN");
  const when = code === "CERT_HAS_EXPIRED" ? ` on ${new Date(peer.valid_to).toISOString()}` : "";
  return { state: "rejected", reason: `${REASONS[code] ?? "it does not verify"}${when} (${code})`, text };
}

function subjectOf(raw: Record<string, string | string[]> | undefined): CertSubject {
  const out: Record<string, readonly string[]> = {};
  for (const [attr, value] of Object.entries(raw ?? {})) out[attr] = Array.isArray(value) ? value : [value];
  return out;
}
