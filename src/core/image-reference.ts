/**
 * Image references as Docker parses them (distribution/reference's grammar):
 * [registry[:port]/]path[:tag][@digest], path components lowercase. Checked when an agent
 * is registered or a task names an image, and again when an agent starts (an agent stored
 * before this check existed), with the same INVALID_ARGUMENT message naming the field, so a
 * bad reference never reaches the engine, which would answer only "invalid reference format".
 */
import { invalidArgument } from "./errors.js";

const ALNUM = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|-+)";
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const REFERENCE = new RegExp(`^(${NAME})(?::${TAG})?(?:@${DIGEST})?$`);

/** Docker's limit on the name part (registry and path). */
export const MAX_IMAGE_NAME_LENGTH = 255;

/** Why image is not a valid reference; undefined when it is. */
export function imageReferenceProblem(image: string): string | undefined {
  const m = REFERENCE.exec(image);
  if (m) return m[1]!.length > MAX_IMAGE_NAME_LENGTH ? `the name is longer than ${MAX_IMAGE_NAME_LENGTH} characters` : undefined;
  if (REFERENCE.test(image.toLowerCase())) return "the repository path must be lowercase";
  return "expected [registry[:port]/]name[:tag][@digest], e.g. agentorch/busybox:test";
}

/** Throws INVALID_ARGUMENT naming field when image is not a valid image reference. */
export function checkImageReference(image: string, field = "image"): void {
  const problem = imageReferenceProblem(image);
  if (problem !== undefined) throw invalidArgument(`${field} "${image}" is not a valid image reference: ${problem}`, { field });
}
