/** Opaque page tokens: the last key of the previous page, bound to the filter it was made for. */
import { invalidArgument } from "./errors.js";

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export function pageSize(requested: number): number {
  if (!Number.isInteger(requested) || requested < 0) throw invalidArgument("page_size must not be negative", { field: "page_size" });
  if (requested > MAX_PAGE_SIZE) throw invalidArgument(`page_size must be at most ${MAX_PAGE_SIZE}`, { field: "page_size" });
  return requested === 0 ? DEFAULT_PAGE_SIZE : requested;
}

export function encodePageToken(after: string, filter: string): string {
  return Buffer.from(JSON.stringify({ a: after, f: filter })).toString("base64url");
}

/** The key to continue after, or undefined for the first page. Throws INVALID_ARGUMENT on a bogus token. */
export function decodePageToken(token: string, filter: string): string | undefined {
  if (!token) return undefined;
  if (token.length > 1024) throw invalidArgument("page_token is not valid", { field: "page_token" });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw invalidArgument("page_token is not valid", { field: "page_token" });
  }
  const p = parsed as { a?: unknown; f?: unknown };
  if (typeof p !== "object" || p === null || typeof p.a !== "string" || typeof p.f !== "string") {
    throw invalidArgument("page_token is not valid", { field: "page_token" });
  }
  if (p.f !== filter) throw invalidArgument("page_token was made for another filter", { field: "page_token" });
  return p.a;
}
