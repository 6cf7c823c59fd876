// Script checks, as Consul's CheckMonitor with ScriptArgs: the program runs directly with its
// arguments (no shell), stdout and stderr captured together up to the output limit. Exit 0 is
// passing, exit 1 warning, anything else (another code, a signal, a failure to start) critical.
// A run that outlives its timeout is killed with SIGKILL, with the whole process group it leads
// (the script runs as a group leader), and reported critical as "Timed out (30s) running check",
// followed by what it had printed.
import { spawn, type ChildProcess } from 'node:child_process';
import { formatGoDurationNs } from '../config/duration.ts';
import { OutputCapture, truncateOutput } from './output.ts';
import { critical, errorMessage, type Probe, type ProbeResult, type Timers } from './probe.ts';

const GROUPS = process.platform !== 'win32';

export interface ScriptProbeOptions {
  args: string[];
  timeoutNs: number;
  outputMaxBytes: number;
  timers: Timers;
}

export function scriptProbe(o: ScriptProbeOptions): Probe {
  const timedOutText = `Timed out (${formatGoDurationNs(BigInt(Math.round(o.timeoutNs)))}) running check`;
  return (signal) => new Promise<ProbeResult>((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(o.args[0]!, o.args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: GROUPS, windowsHide: true });
    } catch (err) {
      resolve(critical(truncateOutput(errorMessage(err), o.outputMaxBytes)));
      return;
    }
    const capture = new OutputCapture(o.outputMaxBytes);
    child.stdout!.on('data', (chunk: Buffer) => capture.write(chunk));
    child.stderr!.on('data', (chunk: Buffer) => capture.write(chunk));

    let exited = false;
    let timedOut = false;
    let settled = false;
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      o.timers.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    };
    // The group outlives its leader while any member runs, so this also reaches what the script
    // left behind after it exited.
    const kill = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(GROUPS ? -child.pid : child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    // Once the process is gone, do not wait for pipes a surviving grandchild may hold open.
    const timeoutResult = (): ProbeResult => {
      child.stdout!.destroy();
      child.stderr!.destroy();
      const out = capture.text();
      return critical(out === '' ? timedOutText : `${timedOutText}\n\n${out}`);
    };
    const timer = o.timers.setTimeout(() => {
      timedOut = true;
      kill();
      if (exited) finish(timeoutResult());
    }, o.timeoutNs / 1e6);
    const onAbort = (): void => {
      kill();
      finish(critical('check stopped'));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });

    child.on('error', (err) => finish(critical(truncateOutput(err.message, o.outputMaxBytes))));
    child.on('exit', () => {
      exited = true;
      if (timedOut) finish(timeoutResult());
    });
    child.on('close', (code) => {
      if (timedOut) return finish(timeoutResult());
      const output = capture.text();
      if (code === 0) finish({ status: 'passing', output });
      else if (code === 1) finish({ status: 'warning', output });
      else finish({ status: 'critical', output });
    });
  });
}
