// What a CLI command may touch outside itself: output streams, stdin, environment variables and
// process signals. Passed in (never taken from `process` inside commands) so tests can run every
// command in-process and read exactly what a user would see.

export interface Writer {
  write(chunk: string | Uint8Array): unknown;
}

export type SignalName = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

export interface SignalSource {
  on(signal: SignalName, listener: () => void): unknown;
  off(signal: SignalName, listener: () => void): unknown;
}

export interface CliIO {
  readonly stdout: Writer;
  readonly stderr: Writer;
  readonly stdin: AsyncIterable<Uint8Array | string>;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signals: SignalSource;
}

/** Consul's cli.Ui: Output and Info go to stdout, Error to stderr, each with a newline. */
export class Ui {
  private readonly io: CliIO;
  constructor(io: CliIO) {
    this.io = io;
  }
  output(s: string): void {
    this.io.stdout.write(`${s}\n`);
  }
  info(s: string): void {
    this.io.stdout.write(`${s}\n`);
  }
  error(s: string): void {
    this.io.stderr.write(`${s}\n`);
  }
  /** Raw bytes (KV values are binary): written as they are, then a newline. */
  bytes(b: Uint8Array): void {
    this.io.stdout.write(b);
    this.io.stdout.write('\n');
  }
}

export async function readAll(input: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c));
  return Buffer.concat(chunks);
}

export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    signals: process,
  };
}
