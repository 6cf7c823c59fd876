// The proxy's logger: one line per event with its fields, at Consul's levels (-log-level), in
// Consul's text layout (`2026-01-02T03:04:05.678Z [INFO]  proxy: message: key=value`). A few lines
// of our own instead of pino: the proxy is a small process and logs little.

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };
export const LOG_LEVELS = Object.keys(ORDER) as LogLevel[];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines carry `name` (Consul's named sub-loggers: "proxy.inbound"). */
  named(name: string): Logger;
}

export function parseLogLevel(s: string): LogLevel | undefined {
  const l = s.toLowerCase();
  return l in ORDER ? (l as LogLevel) : undefined;
}

function fieldText(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[\s"=]/.test(s ?? '') ? JSON.stringify(s) : String(s);
}

export function createLogger(opts: { level?: LogLevel; json?: boolean; name?: string; write?: (line: string) => void } = {}): Logger {
  const min = ORDER[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => { process.stderr.write(line); });
  const name = opts.name ?? 'proxy';
  const emit = (level: LogLevel, msg: string, fields: LogFields = {}) => {
    if (ORDER[level] < min) return;
    const ts = new Date().toISOString();
    if (opts.json) {
      const f = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v instanceof Error ? v.message : v]));
      write(`${JSON.stringify({ '@level': level, '@message': msg, '@module': name, '@timestamp': ts, ...f })}\n`);
      return;
    }
    const tag = `[${level.toUpperCase()}]`.padEnd(7);
    const kv = Object.entries(fields).map(([k, v]) => `${k}=${fieldText(v)}`).join(' ');
    write(`${ts} ${tag} ${name}: ${msg}${kv ? `: ${kv}` : ''}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    named: (n) => createLogger({ ...opts, name: `${name}.${n}` }),
  };
}

/** Logs nothing (the library's default when the caller gives no logger). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, named: () => silentLogger };
