// Small pure parts of http/aclEnforce.ts as tables: which token a request carries (Consul's order:
// X-Consul-Token, Authorization: Bearer, ?token=) and which token an agent's own catalog write
// (anti-entropy) is made with.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { antiEntropyToken, requestToken } from '../../src/http/aclEnforce.ts';
import type { Command } from '../../src/state/index.ts';

describe('requestToken', () => {
  const rows: [string, Record<string, string>, string, string | undefined][] = [
    ['none', {}, '', undefined],
    ['X-Consul-Token', { 'x-consul-token': 'a' }, '', 'a'],
    ['Bearer', { authorization: 'Bearer b' }, '', 'b'],
    ['bearer, any case, spaces', { authorization: '  bearer   b2 ' }, '', 'b2'],
    ['?token=', {}, 'token=c', 'c'],
    ['header beats Bearer and query', { 'x-consul-token': 'a', authorization: 'Bearer b' }, 'token=c', 'a'],
    ['Bearer beats query', { authorization: 'Bearer b' }, 'token=c', 'b'],
    ['Basic auth is not a token', { authorization: 'Basic eDp5' }, '', undefined],
    ['empty header falls through', { 'x-consul-token': '' }, 'token=c', 'c'],
  ];
  for (const [label, headers, query, expected] of rows) {
    test(label, () => assert.equal(requestToken(headers, new URLSearchParams(query)), expected));
  }
});

describe('antiEntropyToken', () => {
  const acl = { serviceTokens: new Map([['web', 'web-token']]) };
  const reg = (id: string): Command => ({ type: 'catalogRegister', Node: 'n', SkipNodeUpdate: true, Service: { ID: id, Service: id, Port: 1 } } as Command);
  const rows: [string, Command, { agent: string; default: string; configFileServiceRegistration?: string }, string][] = [
    ['a service registered with a token', reg('web'), { agent: 'agent', default: 'dflt' }, 'web-token'],
    ['a service without one: the config-file token', reg('db'), { agent: 'agent', default: 'dflt', configFileServiceRegistration: 'cfg' }, 'cfg'],
    ['a service without one and no config-file token: the agent token', reg('db'), { agent: 'agent', default: 'dflt' }, 'agent'],
    ['the node row: the agent token', { type: 'catalogRegister', Node: 'n', Address: '1.2.3.4' } as Command, { agent: 'agent', default: 'dflt', configFileServiceRegistration: 'cfg' }, 'agent'],
    ['no agent token: the default', { type: 'catalogRegister', Node: 'n', Address: '1.2.3.4' } as Command, { agent: '', default: 'dflt' }, 'dflt'],
    ['a service deregistration', { type: 'catalogDeregister', Node: 'n', ServiceID: 'web' }, { agent: 'agent', default: 'dflt' }, 'web-token'],
  ];
  for (const [label, cmd, tokens, expected] of rows) {
    test(label, () => assert.equal(antiEntropyToken(acl, tokens, cmd), expected));
  }
});
