/**
 * Reading what a task's container wrote to AGENTORCH_RESULT_FILE. A bad file is reported
 * in dataError and never fails the task by itself.
 */

/** The default cap on a result file's size. */
export const RESULT_FILE_MAX_BYTES = 1024 * 1024;

/**
 * The JSON object in bytes (undefined: no file). Read maxBytes + 1 bytes so an oversize
 * file is recognised. Invalid UTF-8, invalid JSON, a non-object and an oversize file each
 * give a dataError instead of data.
 */
export function parseResultData(
  bytes: Uint8Array | undefined,
  maxBytes: number = RESULT_FILE_MAX_BYTES,
): { data?: Record<string, unknown>; dataError: string } {
  if (bytes === undefined) return { dataError: "" };
  if (bytes.length > maxBytes) return { dataError: `result file is larger than ${maxBytes} bytes` };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { dataError: "result file is not valid UTF-8" };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { dataError: `result file is not valid JSON: ${(err as Error).message}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { dataError: `result file must hold a JSON object (got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value})` };
  }
  return { data: value as Record<string, unknown>, dataError: "" };
}
