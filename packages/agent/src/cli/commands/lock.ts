// `trellis lock [-n N] [-timeout d] <prefix> <child...>`: run a child process while holding a lock
// (N = 1) or a semaphore slot (N > 1) built from sessions and KV acquire, exactly as Consul's
// `consul lock` with its api.Lock / api.Semaphore does, so Trellis and Consul CLIs (and any other
// client of the same recipe) exclude each other on the same prefix:
//   lock:      key <prefix>/.lock, Flags 0x2ddccbc058a50c18, acquired with ?acquire=<session>
//   semaphore: contender key <prefix>/<session> + coordination key <prefix>/.lock holding
//              {"Limit":N,"Holders":{...}} updated by check-and-set, Flags 0xe0f69a2baa414de0
// The recipes are the client API's (../api/lock.ts). The session has a 15 s TTL and is renewed
// every TTL/2; losing it (or the key) kills the child.
// Unlike Consul (which exits 0 unless -child-exit-code), the exit code is the child's.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Command, CommandContext } from '../command.ts';
import { agentReachable, apiErrorText, clientFor } from '../command.ts';
import { HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS } from '../http.ts';
import { flagBool, flagNumber, flagString } from '../../config/flags.ts';
import { formatGoDuration, parseGoDuration } from '../../config/duration.ts';
import {
  DEFAULT_LOCK_TIMING, KeyLock, Semaphore, type Holder, type HolderOptions, type LockError, type LockTiming,
} from '../api/lock.ts';
import { sleep } from '../../sleep.ts';
import type { SignalName } from '../io.ts';

export { LOCK_FLAG_VALUE, SEMAPHORE_FLAG_VALUE, DEFAULT_LOCK_TIMING, type LockTiming } from '../api/lock.ts';

/**
 * Runs the child in its own process group, so that a signal reaches everything it started (a
 * shell's children included); resolves with its exit code (128 + signal number when a signal
 * ended it).
 */
function startChild(ctx: CommandContext, args: string[], shell: boolean, passStdin: boolean): { child: ChildProcess; exited: Promise<number> } {
  const env = { ...process.env, ...ctx.io.env, CONSUL_LOCK_HELD: 'true', TRELLIS_LOCK_HELD: 'true' };
  const opts: SpawnOptions = { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true };
  const child = shell
    ? spawn(ctx.io.env['SHELL'] || '/bin/sh', ['-c', args.join(' ')], opts)
    : spawn(args[0]!, args.slice(1), opts);
  // Piped (not inherited) so the child's output goes wherever this command's output goes.
  child.stdout!.on('data', (b: Buffer) => ctx.io.stdout.write(b));
  child.stderr!.on('data', (b: Buffer) => ctx.io.stderr.write(b));
  child.stdin!.on('error', () => { /* the child closed its stdin early: it does not want more input */ });
  if (passStdin) {
    (async () => {
      try {
        for await (const chunk of ctx.io.stdin) child.stdin!.write(chunk);
      } catch {
        // stdin closed or the child stopped reading: nothing more to pass on.
      }
      child.stdin!.end();
    })();
  } else {
    child.stdin!.end();
  }
  const exited = new Promise<number>((resolve) => {
    child.on('error', (err) => {
      ctx.ui.error(`Error executing handler: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      const status = code !== null ? code : 128 + ((signal && (osConstants.signals as Record<string, number>)[signal]) || 1);
      // Let the pipes deliver what the child wrote last, but do not wait on a grandchild that
      // inherited them and lives on.
      const flushed = setTimeout(() => resolve(status), 500);
      child.on('close', () => { clearTimeout(flushed); resolve(status); });
    });
  });
  return { child, exited };
}

/** Signals the child's whole process group (it was started detached, as its own group). */
function signalChild(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // The group is already gone (ESRCH): the child exited between our check and the signal.
  }
}

async function terminate(child: ChildProcess, exited: Promise<number>, graceMs: number): Promise<number> {
  signalChild(child, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), graceMs); });
  const first = await Promise.race([exited, grace]);
  clearTimeout(timer);
  if (first === 'timeout') {
    signalChild(child, 'SIGKILL');
    return exited;
  }
  return first;
}

export function makeLockCommand(timing: LockTiming = DEFAULT_LOCK_TIMING): Command {
  return {
    name: 'lock',
    synopsis: 'Execute a command holding a lock',
    help: `Usage: trellis lock [options] prefix child...

  Acquires a lock or semaphore at a given path, and invokes a child process
  when successful. The child process can assume the lock is held while it
  executes. If the lock is lost or communication is disrupted the child
  process will be sent a SIGTERM signal and given time to gracefully exit.
  After the grace period expires the process will be hard terminated.

  When -n=1, only a single lock holder or leader exists providing mutual
  exclusion. Setting a higher value switches to a semaphore allowing multiple
  holders to coordinate. The exit code is the child's.

  The prefix provided must have write privileges.`,
    flags: [
      { name: 'child-exit-code', kind: 'bool', usage: "Accepted for compatibility with Consul: Trellis always exits with the child's exit code." },
      { name: 'monitor-retry', kind: 'int', placeholder: 'n', usage: 'Number of times to retry if the agent returns a 500 error while monitoring the lock. The default value is 3, with a 1s wait between retries. Set this value to 0 to disable retries.' },
      { name: 'n', kind: 'int', placeholder: 'n', usage: 'Optional limit on the number of concurrent lock holders. The underlying implementation switches from a lock to a semaphore when the value is greater than 1. The default value is 1.' },
      { name: 'name', kind: 'string', placeholder: 'name', usage: 'Optional name to associate with the lock session. It not provided, one is generated based on the provided child command.' },
      { name: 'pass-stdin', kind: 'bool', usage: 'Pass stdin to the child process.' },
      { name: 'shell', kind: 'bool', usage: 'Use a shell to run the command (can set a custom shell via the SHELL environment variable). The default value is true.' },
      { name: 'timeout', kind: 'duration', placeholder: 'duration', usage: 'Maximum amount of time to wait to acquire the lock, specified as a duration like "1s" or "3h". The default value is 0 (wait forever).' },
      { name: 'try', kind: 'duration', placeholder: 'duration', usage: 'DEPRECATED. Use -timeout instead.' },
      { name: 'verbose', kind: 'bool', usage: 'Enable verbose (debugging) output.' },
      ...HTTP_CLIENT_FLAGS,
      ...HTTP_SERVER_FLAGS,
    ],
    async run(ctx, flags) {
      const limit = flagNumber(flags, 'n') ?? 1;
      if (limit <= 0) { ctx.ui.error('Lock holder limit must be positive'); return 1; }
      const extra = flags.args;
      // `lock <prefix> -- <child...>`: flag parsing has stopped at the prefix, so Consul hands this
      // `--` to the child (`sh -c "-- true"`, which no shell runs). Read it as the separator meant.
      const childArgs = extra[1] === '--' ? extra.slice(2) : extra.slice(1);
      if (extra.length < 1 || childArgs.length === 0) { ctx.ui.error('Key prefix and child command must be specified'); return 1; }
      const prefix = extra[0]!.replace(/^\/+/, '');
      const timeoutMs = flagNumber(flags, 'timeout') ?? flagNumber(flags, 'try') ?? 0;
      if (timeoutMs < 0) { ctx.ui.error('Timeout must be positive'); return 1; }
      const monitorRetries = flagNumber(flags, 'monitor-retry') ?? 3;
      if (monitorRetries < 0) { ctx.ui.error("Number for 'monitor-retry' must be >= 0"); return 1; }
      const verboseOn = flagBool(flags, 'verbose') ?? false;
      const verbose = (s: string) => { if (verboseOn) ctx.ui.info(s); };
      const name = flagString(flags, 'name') || `Trellis lock for '${childArgs.join(' ')}' at '${prefix}'`;

      const client = clientFor(ctx, flags);
      if (!client) return 1;
      if (!(await agentReachable(ctx, client))) return 1;

      const opts: HolderOptions = { client, prefix, sessionName: name, timeoutMs, monitorRetries, timing, verbose };
      const holder: Holder = limit === 1 ? new KeyLock(opts) : new Semaphore(opts, limit);

      // SIGINT/SIGTERM: stop waiting for the lock, or pass the signal to the child and release.
      const shutdown = new AbortController();
      let child: ChildProcess | undefined;
      const onSignal = (sig: SignalName) => () => {
        shutdown.abort();
        if (child) signalChild(child, sig);
      };
      const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
      ctx.io.signals.on('SIGINT', handlers.SIGINT);
      ctx.io.signals.on('SIGTERM', handlers.SIGTERM);
      try {
        verbose('Attempting lock acquisition');
        let held: boolean;
        try {
          held = await holder.acquire(shutdown.signal);
        } catch (err) {
          await holder.session?.destroy();
          ctx.ui.error(`Lock acquisition failed: ${(err as Error).message}`);
          return 1;
        }
        if (!held) {
          await holder.session?.destroy();
          ctx.ui.error('Shutdown triggered or timeout during lock acquisition');
          return 1;
        }

        let code: number;
        if (shutdown.signal.aborted) {
          ctx.ui.error('Shutdown triggered during lock acquisition');
          code = 1;
        } else {
          verbose('Starting handler');
          const started = startChild(ctx, childArgs, flagBool(flags, 'shell') ?? true, flagBool(flags, 'pass-stdin') ?? false);
          child = started.child;
          const stopMonitor = new AbortController();
          const lost = holder.monitor(stopMonitor.signal).then(() => 'lost' as const);
          const stopping = new Promise<'shutdown'>((resolve) => {
            shutdown.signal.addEventListener('abort', () => resolve('shutdown'), { once: true });
          });
          const outcome = await Promise.race([started.exited.then((c) => ({ c })), lost, stopping]);
          stopMonitor.abort();
          if (outcome === 'lost') {
            ctx.ui.error('Lock lost, killing child');
            code = await terminate(started.child, started.exited, timing.killGraceMs);
            if (code === 0) code = 1; // the child did not finish its work under the lock
          } else if (outcome === 'shutdown') {
            // The signal was passed on to the child; give it the grace period, then insist.
            verbose('Shutdown triggered, killing child');
            const grace = new AbortController();
            const first = await Promise.race([started.exited, sleep(timing.killGraceMs, grace.signal).then(() => undefined)]);
            grace.abort();
            code = first ?? await terminate(started.child, started.exited, timing.killGraceMs);
          } else {
            verbose('Child terminated, releasing lock');
            code = outcome.c;
          }
          await lost;
        }

        try {
          await holder.release();
        } catch (err) {
          ctx.ui.error(`Lock release failed: ${(err as Error).message}`);
          return 1;
        }
        try {
          await holder.cleanup();
          verbose('Cleanup succeeded');
        } catch (err) {
          if ((err as LockError).code === 'ERR_LOCK_IN_USE') verbose('Cleanup aborted, lock in use');
          else {
            ctx.ui.error(`Lock cleanup failed: ${(err as Error).message}`);
            return 1;
          }
        }
        return code;
      } finally {
        ctx.io.signals.off('SIGINT', handlers.SIGINT);
        ctx.io.signals.off('SIGTERM', handlers.SIGTERM);
      }
    },
  };
}

export const lockCommand = makeLockCommand();
