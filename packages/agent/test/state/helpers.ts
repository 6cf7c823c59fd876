// Test helpers for the state store: a store with an auto-advancing Raft index, and small builders.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { StateStore } from '../../src/state/store.ts';
import type { Command, CommandResult, CommandType, CommandValueMap } from '../../src/state/types.ts';

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array | null | undefined): string | null => (b ? new TextDecoder().decode(b) : null);

export const SESSION_A = 'aaaaaaaa-0000-4000-8000-000000000001';
export const SESSION_B = 'bbbbbbbb-0000-4000-8000-000000000002';

export class Harness {
  readonly store = new StateStore();
  index = 0;

  /** Applies at the next Raft index. */
  apply<T extends CommandType>(cmd: Command & { type: T }): CommandResult<T> {
    this.index += 1;
    return this.store.apply(this.index, cmd as Command) as CommandResult<T>;
  }

  /** Applies and asserts success; returns the value. */
  ok<T extends CommandType>(cmd: Command & { type: T }): CommandValueMap[T] {
    const r = this.apply<T>(cmd);
    assert.ok(r.ok, `expected ${cmd.type} to succeed, got ${inspect(r, { depth: 6 })}`);
    return r.value as CommandValueMap[T];
  }

  /** Applies and asserts failure; returns the error. */
  fail(cmd: Command): { code: string; message: string } {
    const r = this.apply(cmd);
    assert.ok(!r.ok, `expected ${cmd.type} to fail, got ${inspect(r, { depth: 6 })}`);
    return r.error;
  }

  /** A node with a passing serfHealth check, like an agent registers itself. */
  node(name: string, address = '10.0.0.1', serf: 'passing' | 'critical' | 'warning' = 'passing'): void {
    this.ok({
      type: 'catalogRegister', Node: name, Address: address, Datacenter: 'dc1',
      Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: serf },
    });
  }

  service(node: string, name: string, opts: { id?: string; tags?: string[]; port?: number; status?: 'passing' | 'warning' | 'critical' } = {}): void {
    const id = opts.id ?? name;
    this.ok({
      type: 'catalogRegister', Node: node, Address: '10.0.0.1', Datacenter: 'dc1', SkipNodeUpdate: true,
      Service: { ID: id, Service: name, Tags: opts.tags ?? [], Port: opts.port ?? 80 },
      ...(opts.status ? { Check: { CheckID: `service:${id}`, Name: `${name} check`, ServiceID: id, Status: opts.status } } : {}),
    });
  }

  session(id: string, node: string, extra: Record<string, unknown> = {}): void {
    this.ok({ type: 'sessionCreate', Session: { ID: id, Node: node, ...extra } });
  }
}
