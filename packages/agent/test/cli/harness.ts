// Runs the CLI in-process with captured streams, a scripted stdin and fake signals: what a user at
// a terminal would see, without spawning a process per case.
import { EventEmitter } from 'node:events';
import { runCli } from '../../src/cli/run.ts';
import type { CliIO } from '../../src/cli/io.ts';
import type { CommandContext } from '../../src/cli/command.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  stdin?: string | Buffer;
  signals?: EventEmitter;
  extra?: Partial<Omit<CommandContext, 'io' | 'ui'>>;
}

export function captureIO(opts: RunOptions = {}) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const signals = opts.signals ?? new EventEmitter();
  const stdinData = opts.stdin;
  const io: CliIO = {
    stdout: { write: (c) => out.push(Buffer.from(c)) },
    stderr: { write: (c) => err.push(Buffer.from(c)) },
    stdin: (async function* () { if (stdinData !== undefined) yield Buffer.from(stdinData); })(),
    env: opts.env ?? {},
    signals: signals as unknown as CliIO['signals'],
  };
  return {
    io,
    signals,
    stdout: () => Buffer.concat(out).toString('utf8'),
    stderr: () => Buffer.concat(err).toString('utf8'),
    stdoutBytes: () => Buffer.concat(out),
  };
}

export async function cli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const cap = captureIO(opts);
  const code = await runCli(args, cap.io, opts.extra ?? {});
  return { code, stdout: cap.stdout(), stderr: cap.stderr(), stdoutBytes: cap.stdoutBytes() };
}
