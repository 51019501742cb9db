/**
 * Live progress for watch and follow commands: on a terminal, one status line at the
 * bottom with a spinner, redrawn in place with \r, while change lines scroll above it;
 * when piped, only the change lines, plain. Also the Ctrl-C handling those commands
 * share: the stream is cancelled, the status line cleared, and the process exits 130.
 */
import { EXIT } from "./errors.js";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const CLEAR_LINE = "\r\x1b[K";

/** A spinner line under scrolling output (inactive when the stream is not a terminal). */
export class StatusLine {
  private text: string | (() => string) = "";
  private frame = 0;
  private timer: NodeJS.Timeout | undefined;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout,
    /** False when piped or for -o json: then set() does nothing and log() just writes. */
    readonly active: boolean = process.stdout.isTTY === true,
  ) {}

  /** Changes the status text (and starts the spinner); a function is called at each redraw. */
  set(text: string | (() => string)): void {
    if (!this.active) return;
    shown.add(this);
    this.text = text;
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        this.frame = (this.frame + 1) % FRAMES.length;
        this.draw();
      }, 100);
      this.timer.unref();
    }
    this.draw();
  }

  /** Writes a whole line above the status line. */
  log(line: string): void {
    if (this.drawn) this.out.write(CLEAR_LINE);
    this.out.write(line + "\n");
    this.drawn = false;
    if (this.active && this.text !== "") this.draw();
  }

  /** Removes the status line and stops the spinner. */
  clear(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.drawn) this.out.write(CLEAR_LINE);
    this.drawn = false;
    this.text = "";
  }

  private draw(): void {
    if (!this.active) return;
    const width = (this.out.columns || 80) - 1; // 0 when the terminal does not say
    const text = typeof this.text === "function" ? this.text() : this.text;
    const line = `${FRAMES[this.frame]} ${text}`;
    // Cut to the terminal width, or a wrapped line could not be redrawn in place.
    this.out.write(CLEAR_LINE + (line.length > width ? line.slice(0, width - 1) + "…" : line));
    this.drawn = true;
  }
}

/** Status lines drawn so far, cleared on Ctrl-C. */
const shown = new Set<StatusLine>();

/**
 * Makes Ctrl-C (SIGINT) end a client command cleanly: the status line is cleared (the
 * terminal is left tidy) and the process exits 130. Not for `serve`, which shuts down
 * gracefully on its own.
 */
export function exitOnInterrupt(): void {
  process.once("SIGINT", () => {
    for (const line of shown) line.clear();
    process.exit(EXIT.interrupted);
  });
}
