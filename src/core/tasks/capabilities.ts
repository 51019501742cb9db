/**
 * The capabilities an agent's A2A card gains when it starts a task, inferred from the
 * words of the goal as the source system did: execute-directive always, then one per
 * keyword group below.
 *
 * Matching is per word, case-insensitive: the goal is split on anything that is not a
 * letter or digit, and a word matches a keyword when it starts with the keyword or with
 * the keyword's stem (the keyword without a final "e"). So "testing", "tests", "fixes",
 * "reviewed", "writing", "created", "improving" and "coding" count, while "latest",
 * "prefix", "decode" and "recreate" (a keyword inside a word, not at its start) do not.
 * The source system matched substrings, which made "latest" a testing goal.
 */

/** Capability -> the keywords that imply it, in the order capabilities are reported. */
export const CAPABILITY_KEYWORDS: ReadonlyArray<readonly [capability: string, keywords: readonly string[]]> = [
  ["code-review", ["review", "code"]],
  ["testing", ["test"]],
  ["refactoring", ["refactor", "improve"]],
  ["code-generation", ["write", "create", "implement"]],
  ["debugging", ["debug", "fix"]],
];

/** Every task's agent can execute a directive. */
export const BASE_CAPABILITY = "execute-directive";

const PREFIXES: ReadonlyArray<readonly [string, readonly string[]]> = CAPABILITY_KEYWORDS.map(([cap, kws]) => [
  cap,
  kws.map((k) => (k.endsWith("e") ? k.slice(0, -1) : k)),
]);

/** The capabilities implied by a goal: "execute-directive" first, then in CAPABILITY_KEYWORDS order, no duplicates. */
export function inferCapabilities(goal: string): string[] {
  const words = goal.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0);
  const out = [BASE_CAPABILITY];
  for (const [cap, prefixes] of PREFIXES) {
    if (words.some((w) => prefixes.some((p) => w.startsWith(p)))) out.push(cap);
  }
  return out;
}

/** existing followed by the added capabilities it lacks, in order; the card keeps what it had. */
export function mergeCapabilities(existing: readonly string[], added: readonly string[]): string[] {
  const seen = new Set(existing);
  const out = [...existing];
  for (const c of added) {
    if (!seen.has(c)) {
      seen.add(c);
      out.push(c);
    }
  }
  return out;
}
