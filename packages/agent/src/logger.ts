// Structured logs with pino. Consul's level names (trace, debug, info, warn, err/error) map onto
// pino's; -log-json prints JSON lines, otherwise a compact human line like Consul's:
//   2026-11-25T22:41:21.000Z [INFO]  agent.raft: leader elected: leader=a term=2
import pino, { type Logger } from 'pino';
import { Writable } from 'node:stream';

export type { Logger };

const consulLevels: Record<string, pino.Level> = {
  trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', err: 'error', error: 'error',
};

export function pinoLevel(consulLevel: string): pino.Level {
  const l = consulLevels[consulLevel.toLowerCase()];
  if (!l) throw new Error(`invalid log level "${consulLevel}": use one of trace, debug, info, warn, err`);
  return l;
}

const SECRET_KEYS = new Set(['encrypt', 'key', 'psk', 'privateKey', 'token', 'secret']);

/** Human format: time [LEVEL] component: message: k=v ... (secrets never printed). */
function humanStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        let o: Record<string, unknown>;
        try { o = JSON.parse(line); } catch { out.write(line + '\n'); continue; }
        const { level, time, msg, component, pid, hostname, ...rest } = o;
        void pid; void hostname;
        const lvl = `[${level === 'fatal' ? 'ERROR' : String(level).toUpperCase()}]`.padEnd(8);
        const kv = Object.entries(rest).map(([k, v]) => {
          if (SECRET_KEYS.has(k)) return `${k}=<hidden>`;
          if (v && typeof v === 'object' && 'message' in (v as object)) return `${k}="${(v as { message: string }).message}"`;
          return `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`;
        }).join(' ');
        out.write(`${new Date(time as number).toISOString()} ${lvl} ${component ?? 'agent'}: ${msg ?? ''}${kv ? ': ' + kv : ''}\n`);
      }
      cb();
    },
  });
}

/** Every child of a logger made by createLogger, so a reload can change the level of all of them. */
const families = new WeakMap<Logger, Set<WeakRef<Logger>>>();

export function createLogger(opts: { level: string; json: boolean; stream?: NodeJS.WritableStream }): Logger {
  const out = opts.stream ?? process.stdout;
  const children = new Set<WeakRef<Logger>>();
  const root = pino({
    level: pinoLevel(opts.level),
    // Children copy the level when they are made (pino); remember them (and theirs: onChild is inherited).
    onChild: (child) => { children.add(new WeakRef(child)); },
    base: undefined,
    redact: { paths: ['encrypt', 'key', 'psk', 'privateKey', 'token', '*.encrypt', '*.token'], censor: '<hidden>' },
    formatters: { level: (label) => ({ level: label }) },
    timestamp: opts.json ? pino.stdTimeFunctions.isoTime : pino.stdTimeFunctions.epochTime,
  }, opts.json ? out : humanStream(out));
  families.set(root, children);
  return root;
}

/** Sets the level of a logger made by createLogger and of every child it has made (log_level on reload). */
export function setLogLevel(root: Logger, consulLevel: string): void {
  const level = pinoLevel(consulLevel);
  root.level = level;
  const children = families.get(root);
  for (const ref of children ?? []) {
    const child = ref.deref();
    if (child) child.level = level;
    else children!.delete(ref);
  }
}
