/**
 * Docker's multiplexed log stream (non-TTY containers), decoded by hand so stdout and
 * stderr stay interleaved in the order the engine wrote them, and a bounded tail of it.
 * Each frame: 1 byte stream (0 stdin, 1 stdout, 2 stderr), 3 zero bytes, a big-endian
 * uint32 length, then that many bytes of payload.
 */

export interface LogFrame {
  stream: "stdout" | "stderr";
  payload: Buffer;
}

const HEADER = 8;

/**
 * Incremental demultiplexer: feed it chunks as they arrive (frames may span chunks) and
 * it returns the complete frames. Holds at most one partial frame. A stream that is not
 * multiplexed (a TTY container) is passed through as stdout.
 */
export class LogDemuxer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private raw = false;

  push(chunk: Buffer): LogFrame[] {
    if (this.raw) return chunk.length > 0 ? [{ stream: "stdout", payload: chunk }] : [];
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: LogFrame[] = [];
    for (;;) {
      if (this.pendingBytes < HEADER) break;
      const head = this.peek(HEADER);
      const kind = head[0];
      if ((kind !== 0 && kind !== 1 && kind !== 2) || head[1] !== 0 || head[2] !== 0 || head[3] !== 0) {
        this.raw = true;
        const rest = this.take(this.pendingBytes);
        if (rest.length > 0) frames.push({ stream: "stdout", payload: rest });
        break;
      }
      const length = head.readUInt32BE(4);
      if (this.pendingBytes < HEADER + length) break;
      this.take(HEADER);
      frames.push({ stream: kind === 2 ? "stderr" : "stdout", payload: this.take(length) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.pending[0]!.length < n) this.pending = [Buffer.concat(this.pending)];
    return this.pending[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.pending[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.pending.shift();
      else this.pending[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.pending);
      out = all.subarray(0, n);
      this.pending = all.length > n ? [all.subarray(n)] : [];
    }
    this.pendingBytes -= n;
    return out;
  }
}

/**
 * Keeps the last `max` bytes of what is pushed, holding at most `max` plus one chunk,
 * and remembers whether anything older was dropped.
 */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private held = 0;
  private total = 0;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.total += chunk.length;
    this.chunks.push(chunk);
    this.held += chunk.length;
    while (this.chunks.length > 0 && this.held - this.chunks[0]!.length >= this.max) {
      this.held -= this.chunks.shift()!.length;
    }
  }

  /** Every byte pushed so far, including dropped ones. */
  get totalBytes(): number {
    return this.total;
  }

  result(): { data: Uint8Array; truncated: boolean } {
    const all = Buffer.concat(this.chunks);
    const keep = Math.max(0, this.max);
    const data = all.length > keep ? all.subarray(all.length - keep) : all;
    // A copy, so the caller does not pin the larger buffer it was cut from.
    return { data: new Uint8Array(data), truncated: this.total > keep };
  }
}
