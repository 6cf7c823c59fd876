// Check output limits. Every output is cut to the check's OutputMaxSize (Consul's default 4096
// bytes) the way LocalState cuts a TTL check's output: the first N bytes, then
// " ... (captured N of M bytes)". Streamed output (a script's stdout+stderr, an HTTP body) is
// captured by OutputCapture, which keeps only the first N bytes but counts them all, so the
// suffix gives the real total without holding it in memory.
import { DEFAULT_OUTPUT_MAX_BYTES, type CheckType } from '../structs/check.ts';

/** The output limit of a check: its OutputMaxSize when set, else Consul's 4096 bytes. */
export function outputMaxBytes(ct: CheckType): number {
  return ct.OutputMaxSize && ct.OutputMaxSize > 0 ? ct.OutputMaxSize : DEFAULT_OUTPUT_MAX_BYTES;
}

/** The same cut as local.ts applies to TTL check output. */
export function truncateOutput(output: string, max: number): string {
  const bytes = Buffer.from(output);
  if (bytes.length <= max) return output;
  return `${bytes.subarray(0, max).toString('utf8')} ... (captured ${max} of ${bytes.length} bytes)`;
}

/** Collects a stream's bytes up to `max`, counting the rest. */
export class OutputCapture {
  readonly #max: number;
  readonly #kept: Buffer[] = [];
  #keptBytes = 0;
  #total = 0;

  constructor(max: number) {
    this.#max = max;
  }

  write(chunk: Buffer): void {
    this.#total += chunk.length;
    const room = this.#max - this.#keptBytes;
    if (room <= 0) return;
    // Copy a partial chunk so the rest of it is not kept alive.
    const part = chunk.length <= room ? chunk : Buffer.from(chunk.subarray(0, room));
    this.#kept.push(part);
    this.#keptBytes += part.length;
  }

  /** Bytes written so far, kept or not. */
  get total(): number {
    return this.#total;
  }

  text(): string {
    const s = Buffer.concat(this.#kept).toString('utf8');
    return this.#total > this.#max ? `${s} ... (captured ${this.#max} of ${this.#total} bytes)` : s;
  }
}
