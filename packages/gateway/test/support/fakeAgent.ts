// A stand-in for the local agent's HTTP API, on a real loopback socket, serving the JSON shapes the
// proxy reads (Consul's), with blocking queries: ?index= (and ?hash= for the agent's own service
// endpoint) wait until the resource changes or `wait` elapses. Tests change its state and the
// proxy sees it as it would a real agent's.

import http from 'node:http';
import type net from 'node:net';
import { EventEmitter } from 'node:events';
import type { AuthorizeResult, CARoots, LeafCert, ProxyService, ServiceEntry } from '../../src/types.ts';

export interface AuthorizeRequest { Target: string; ClientCertURI: string; ClientCertSerial: string }

export class FakeAgent {
  private index = 10;
  private readonly changed = new EventEmitter();
  private readonly versions = new Map<string, number>();
  readonly services = new Map<string, ProxyService>();
  readonly leaves = new Map<string, LeafCert>();
  readonly health = new Map<string, ServiceEntry[]>();
  roots: CARoots = { ActiveRootID: '', TrustDomain: '', Roots: [] };
  authorize: (req: AuthorizeRequest) => AuthorizeResult = () => ({ Authorized: true, Reason: 'default allow' });
  readonly authorizeCalls: AuthorizeRequest[] = [];
  private server!: http.Server;
  addr = '';

  static async start(): Promise<FakeAgent> {
    const a = new FakeAgent();
    a.changed.setMaxListeners(0);
    a.server = http.createServer((req, res) => { a.handle(req, res); });
    await new Promise<void>((r) => a.server.listen(0, '127.0.0.1', r));
    a.addr = `127.0.0.1:${(a.server.address() as net.AddressInfo).port}`;
    return a;
  }

  /** Marks a resource changed: blocked queries on it answer. */
  bump(key: string): void {
    this.index += 1;
    this.versions.set(key, this.index);
    this.changed.emit('change', key);
  }

  setService(s: ProxyService): void { this.services.set(s.ID, s); this.bump(`service/${s.ID}`); }
  setLeaf(service: string, leaf: LeafCert): void { this.leaves.set(service, leaf); this.bump(`leaf/${service}`); }
  setRoots(r: CARoots): void { this.roots = r; this.bump('roots'); }
  setHealth(service: string, entries: ServiceEntry[]): void { this.health.set(service, entries); this.bump(`health/${service}`); }

  private version(key: string): number { return this.versions.get(key) ?? 1; }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers });
      res.end(text);
    };
    if (req.method === 'POST' && p === '/v1/agent/connect/authorize') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as AuthorizeRequest;
        this.authorizeCalls.push(body);
        send(200, this.authorize(body));
      });
      return;
    }
    if (req.method !== 'GET') { send(405, 'method not allowed'); return; }
    if (p === '/v1/agent/services') {
      send(200, Object.fromEntries([...this.services].map(([id, s]) => [id, s])));
      return;
    }
    let key: string | undefined;
    let get: (() => unknown) | undefined;
    let m: RegExpExecArray | null;
    if ((m = /^\/v1\/agent\/service\/(.+)$/.exec(p))) { const id = decodeURIComponent(m[1]!); key = `service/${id}`; get = () => this.services.get(id); }
    else if ((m = /^\/v1\/agent\/connect\/ca\/leaf\/(.+)$/.exec(p))) { const s = decodeURIComponent(m[1]!); key = `leaf/${s}`; get = () => this.leaves.get(s); }
    else if (p === '/v1/agent/connect/ca/roots') { key = 'roots'; get = () => this.roots; }
    else if ((m = /^\/v1\/health\/connect\/(.+)$/.exec(p))) { const s = decodeURIComponent(m[1]!); key = `health/${s}`; get = () => this.health.get(s) ?? []; }
    if (!key || !get) { send(404, `unknown path ${p}`); return; }
    const k = key;
    const g = get;
    const hashBased = k.startsWith('service/');
    const answer = () => {
      const v = g();
      if (v === undefined) { send(404, `unknown service ${k}`); return; }
      const version = String(this.version(k));
      send(200, v, hashBased ? { 'X-Consul-ContentHash': `h${version}` } : { 'X-Consul-Index': version });
    };
    const since = hashBased ? url.searchParams.get('hash')?.replace(/^h/, '') : url.searchParams.get('index');
    if (!since || Number(since) < this.version(k)) { answer(); return; }
    const waitMs = Math.min(Number((url.searchParams.get('wait') ?? '5s').replace(/s$/, '')) * 1000, 5000);
    const onChange = (changedKey: string) => { if (changedKey === k) done(); };
    const timer = setTimeout(() => done(), waitMs);
    const done = () => { clearTimeout(timer); this.changed.off('change', onChange); if (!res.writableEnded && !res.destroyed) answer(); };
    this.changed.on('change', onChange);
    // res, not req: a request's 'close' fires once its (empty) body is read, not when the caller goes.
    res.on('close', () => { clearTimeout(timer); this.changed.off('change', onChange); });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
