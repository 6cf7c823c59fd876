// `trellis acl bootstrap | token | policy | role ...`: Consul's command/acl/*, same flags, output
// (the pretty formatters of command/acl/{token,policy,role}/formatter.go, or -format=json) and
// error wording ("Failed ACL bootstrapping: ...", "Failed to create new token: ...").
// The token to act with comes from -token, -token-file, CONSUL_HTTP_TOKEN(_FILE), as everywhere.
import fs from 'node:fs';
import type { Command, CommandContext } from '../command.ts';
import { clientFor } from '../command.ts';
import { ApiError, HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS, type ApiClient } from '../http.ts';
import { readAll } from '../io.ts';
import { flagBool, flagList, flagString, type FlagSpec, type ParsedFlags } from '../../config/flags.ts';

const HTTP_FLAGS = [...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS];
const FORMAT: FlagSpec = { name: 'format', kind: 'string', placeholder: 'value', usage: 'Output format. Must be one of (pretty|json)' };
const META: FlagSpec = { name: 'meta', kind: 'bool', usage: 'Indicates that token metadata such as the content hash and raft indices should be shown for each entry' };

type Obj = Record<string, unknown>;
interface Link { ID: string; Name: string }

/** Go's time.Time %v: "2018-10-22 20:17:52.395963 +0000 UTC". */
function goTime(iso: unknown): string {
  if (typeof iso !== 'string' || iso === '') return '0001-01-01 00:00:00 +0000 UTC';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const frac = p(d.getUTCMilliseconds(), 3).replace(/0+$/, '');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}${frac ? `.${frac}` : ''} +0000 UTC`;
}

const links = (v: unknown): Link[] => (Array.isArray(v) ? v as Link[] : []);

export function formatToken(t: Obj, meta: boolean): string {
  let out = `AccessorID:       ${String(t.AccessorID ?? '')}\nSecretID:         ${String(t.SecretID ?? '')}\n`;
  out += `Description:      ${String(t.Description ?? '')}\nLocal:            ${t.Local === true}\nCreate Time:      ${goTime(t.CreateTime)}\n`;
  if (typeof t.ExpirationTime === 'string' && t.ExpirationTime !== '') out += `Expiration Time:  ${goTime(t.ExpirationTime)}\n`;
  if (meta) out += `Hash:             ${String(t.Hash ?? '')}\nCreate Index:     ${String(t.CreateIndex ?? 0)}\nModify Index:     ${String(t.ModifyIndex ?? 0)}\n`;
  out += linkLines('Policies', t.Policies) + linkLines('Roles', t.Roles) + identityLines(t);
  return out;
}

function linkLines(title: string, v: unknown): string {
  const l = links(v);
  return l.length === 0 ? '' : `${title}:\n${l.map((x) => `   ${x.ID} - ${x.Name}\n`).join('')}`;
}

function identityLines(t: Obj): string {
  let out = '';
  const svc = Array.isArray(t.ServiceIdentities) ? t.ServiceIdentities as { ServiceName: string; Datacenters?: string[] }[] : [];
  if (svc.length > 0) {
    out += 'Service Identities:\n';
    for (const s of svc) out += `   ${s.ServiceName} (Datacenters: ${s.Datacenters && s.Datacenters.length > 0 ? s.Datacenters.join(', ') : 'all'})\n`;
  }
  const nodes = Array.isArray(t.NodeIdentities) ? t.NodeIdentities as { NodeName: string; Datacenter: string }[] : [];
  if (nodes.length > 0) {
    out += 'Node Identities:\n';
    for (const n of nodes) out += `   ${n.NodeName} (Datacenter: ${n.Datacenter})\n`;
  }
  return out;
}

export function formatPolicy(p: Obj, meta: boolean): string {
  let out = `ID:           ${String(p.ID ?? '')}\nName:         ${String(p.Name ?? '')}\nDescription:  ${String(p.Description ?? '')}\n`;
  out += `Datacenters:  ${Array.isArray(p.Datacenters) ? p.Datacenters.join(', ') : ''}\n`;
  if (meta) out += `Hash:         ${String(p.Hash ?? '')}\nCreate Index: ${String(p.CreateIndex ?? 0)}\nModify Index: ${String(p.ModifyIndex ?? 0)}\n`;
  out += `Rules:\n${String(p.Rules ?? '')}\n`;
  return out;
}

function formatPolicyStub(p: Obj, meta: boolean): string {
  let out = `${String(p.Name ?? '')}:\n   ID:           ${String(p.ID ?? '')}\n   Description:  ${String(p.Description ?? '')}\n`;
  out += `   Datacenters:  ${Array.isArray(p.Datacenters) ? p.Datacenters.join(', ') : ''}\n`;
  if (meta) out += `   Hash:         ${String(p.Hash ?? '')}\n   Create Index: ${String(p.CreateIndex ?? 0)}\n   Modify Index: ${String(p.ModifyIndex ?? 0)}\n`;
  return out;
}

export function formatRole(r: Obj, meta: boolean): string {
  let out = `ID:           ${String(r.ID ?? '')}\nName:         ${String(r.Name ?? '')}\nDescription:  ${String(r.Description ?? '')}\n`;
  if (meta) out += `Hash:         ${String(r.Hash ?? '')}\nCreate Index: ${String(r.CreateIndex ?? 0)}\nModify Index: ${String(r.ModifyIndex ?? 0)}\n`;
  return out + linkLines('Policies', r.Policies) + identityLines(r);
}

/** Prints one object or a list in the chosen -format; false (after the error) on a bad format. */
function show(ctx: CommandContext, flags: ParsedFlags, v: Obj | Obj[], pretty: (o: Obj, meta: boolean) => string): boolean {
  const format = flagString(flags, 'format') ?? 'pretty';
  if (format === 'json') {
    ctx.io.stdout.write(`${JSON.stringify(v, null, 4)}\n`);
    return true;
  }
  if (format !== 'pretty') {
    ctx.ui.error(`Invalid format: "${format}". Must be one of (pretty|json)`);
    return false;
  }
  const meta = flagBool(flags, 'meta') === true;
  ctx.io.stdout.write(Array.isArray(v) ? v.map((o) => pretty(o, meta)).join('\n') : pretty(v, meta));
  return true;
}

function errText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  throw err;
}

async function call(client: ApiClient, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await client.request(method, path, body === undefined ? {} : { body: JSON.stringify(body) });
  const text = res.body.toString('utf8');
  return text === '' ? undefined : JSON.parse(text) as unknown;
}

/** `-rules` and friends: the value, "@file" for a file's content, "-" for stdin (Consul's LoadDataSource). */
async function dataSource(ctx: CommandContext, v: string): Promise<string> {
  if (v === '-') return (await readAll(ctx.io.stdin)).toString('utf8');
  if (v.startsWith('@')) return fs.readFileSync(v.slice(1), 'utf8');
  return v;
}

const serviceIdentities = (flags: ParsedFlags) => flagList(flags, 'service-identity').map((s) => {
  const [name = '', dcs = ''] = s.split(':');
  return dcs ? { ServiceName: name, Datacenters: dcs.split(',') } : { ServiceName: name };
});
const nodeIdentities = (flags: ParsedFlags) => flagList(flags, 'node-identity').map((s) => {
  const [name = '', dc = ''] = s.split(':');
  return { NodeName: name, Datacenter: dc };
});
const policyLinks = (flags: ParsedFlags, prefix = '') => [
  ...flagList(flags, `${prefix}policy-id`).map((ID) => ({ ID })),
  ...flagList(flags, `${prefix}policy-name`).map((Name) => ({ Name })),
];
const roleLinks = (flags: ParsedFlags, prefix = '') => [
  ...flagList(flags, `${prefix}role-id`).map((ID) => ({ ID })),
  ...flagList(flags, `${prefix}role-name`).map((Name) => ({ Name })),
];

const LINK_FLAGS: FlagSpec[] = [
  { name: 'policy-id', kind: 'list', placeholder: 'value', usage: 'ID of a policy to use for this token. May be specified multiple times' },
  { name: 'policy-name', kind: 'list', placeholder: 'value', usage: 'Name of a policy to use for this token. May be specified multiple times' },
  { name: 'role-id', kind: 'list', placeholder: 'value', usage: 'ID of a role to use for this token. May be specified multiple times' },
  { name: 'role-name', kind: 'list', placeholder: 'value', usage: 'Name of a role to use for this token. May be specified multiple times' },
  { name: 'service-identity', kind: 'list', placeholder: 'value', usage: 'Name of a service identity to use for this token. May be specified multiple times. Format is the SERVICENAME or SERVICENAME:DATACENTER1,DATACENTER2,...' },
  { name: 'node-identity', kind: 'list', placeholder: 'value', usage: 'Name of a node identity to use for this token. May be specified multiple times. Format is NODENAME:DATACENTER' },
];

/** A command whose body runs with a client; `run` returns the exit code. */
function cmd(name: string, synopsis: string, help: string, flags: FlagSpec[], run: (ctx: CommandContext, flags: ParsedFlags, client: ApiClient) => Promise<number>): Command {
  return {
    name, synopsis, help, flags: [...flags, ...HTTP_FLAGS],
    async run(ctx, parsed) {
      const client = clientFor(ctx, parsed);
      if (!client) return 1;
      return run(ctx, parsed, client);
    },
  };
}

// ---- bootstrap -------------------------------------------------------------------------------------

export const aclBootstrapCommand = cmd('acl bootstrap', 'Bootstrap Trellis\'s ACL system', `Usage: trellis acl bootstrap [options]

  The bootstrap command will request Trellis to generate a new token with unlimited privileges to use
  for management purposes and output its details. This can only be done once and afterwards bootstrapping
  will be disabled. If all tokens are lost and you need to bootstrap again you can follow the bootstrap
  reset procedure (write the reset index into <data-dir>/acl-bootstrap-reset).`, [FORMAT], async (ctx, flags, client) => {
  try {
    const t = await call(client, 'PUT', '/v1/acl/bootstrap') as Obj;
    return show(ctx, flags, t, formatToken) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Failed ACL bootstrapping: ${errText(err)}`);
    return 1;
  }
});

// ---- tokens ----------------------------------------------------------------------------------------

const tokenId = (flags: ParsedFlags): string => flagString(flags, 'id') ?? flagString(flags, 'accessor-id') ?? '';
const ID_FLAG: FlagSpec = { name: 'id', kind: 'string', placeholder: 'value', usage: 'The Accessor ID of the token. It may be specified as a unique ID prefix but will error if the prefix matches multiple token Accessor IDs' };

/** A unique AccessorID prefix to the full ID, as Consul's GetTokenIDFromPartial. */
async function fullTokenId(client: ApiClient, id: string): Promise<string> {
  if (id === 'anonymous') return '00000000-0000-0000-0000-000000000002';
  if (id.length >= 36) return id;
  const list = await call(client, 'GET', '/v1/acl/tokens') as Obj[];
  const matches = list.filter((t) => String(t.AccessorID).startsWith(id));
  if (matches.length === 0) throw new ApiError('ERR_HTTP_STATUS', 'No such token ID with prefix: ' + id);
  if (matches.length > 1) throw new ApiError('ERR_HTTP_STATUS', 'Token ID prefix is ambiguous: ' + id);
  return String(matches[0]!.AccessorID);
}

export const aclTokenCreateCommand = cmd('acl token create', 'Create an ACL token', `Usage: trellis acl token create [options]

  When creating a new token policies may be linked using either the -policy-id
  or the -policy-name options. When specifying policies by IDs you may use a
  unique prefix of the UUID as a shortcut for specifying the entire UUID.

  Create a new token:

          $ trellis acl token create -description "Replication token" -policy-name "replication"`, [
  { name: 'description', kind: 'string', placeholder: 'value', usage: 'A description of the token' },
  { name: 'accessor', kind: 'string', placeholder: 'value', usage: 'Create the token with this Accessor ID' },
  { name: 'secret', kind: 'string', placeholder: 'value', usage: 'Create the token with this Secret ID' },
  { name: 'local', kind: 'bool', usage: 'Create this as a datacenter local token' },
  { name: 'expires-ttl', kind: 'string', placeholder: 'duration', usage: 'Duration of time this token should be valid for' },
  ...LINK_FLAGS, FORMAT, META,
], async (ctx, flags, client) => {
  const body: Obj = {
    Description: flagString(flags, 'description') ?? '',
    Policies: policyLinks(flags), Roles: roleLinks(flags),
    ServiceIdentities: serviceIdentities(flags), NodeIdentities: nodeIdentities(flags),
    Local: flagBool(flags, 'local') === true,
  };
  if (flagString(flags, 'accessor')) body.AccessorID = flagString(flags, 'accessor');
  if (flagString(flags, 'secret')) body.SecretID = flagString(flags, 'secret');
  if (flagString(flags, 'expires-ttl')) body.ExpirationTTL = flagString(flags, 'expires-ttl');
  try {
    return show(ctx, flags, await call(client, 'PUT', '/v1/acl/token', body) as Obj, formatToken) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Failed to create new token: ${errText(err)}`);
    return 1;
  }
});

export const aclTokenReadCommand = cmd('acl token read', 'Read an ACL token', `Usage: trellis acl token read [options] -id TOKENID

  This command will retrieve and print out the details of a single token.

  Using a partial ID:

          $ trellis acl token read -id 4be56c77-82

  Using the token itself:

          $ trellis acl token read -self`, [ID_FLAG, { name: 'self', kind: 'bool', usage: 'Indicates that the current HTTP token should be read by secret ID instead of expecting a -id option' }, FORMAT, META], async (ctx, flags, client) => {
  const self = flagBool(flags, 'self') === true;
  let id = tokenId(flags);
  if (!self && id === '') {
    ctx.ui.error('Must specify the -id parameter');
    return 1;
  }
  try {
    if (!self) id = await fullTokenId(client, id);
    const t = await call(client, 'GET', self ? '/v1/acl/token/self' : `/v1/acl/token/${encodeURIComponent(id)}`) as Obj;
    return show(ctx, flags, t, formatToken) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Error reading token ${JSON.stringify(id)}: ${errText(err)}`);
    return 1;
  }
});

export const aclTokenListCommand = cmd('acl token list', 'List ACL tokens', `Usage: trellis acl token list [options]

  List all the ACL tokens

          $ trellis acl token list`, [FORMAT, META], async (ctx, flags, client) => {
  try {
    return show(ctx, flags, await call(client, 'GET', '/v1/acl/tokens') as Obj[], formatToken) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Failed to retrieve the token list: ${errText(err)}`);
    return 1;
  }
});

export const aclTokenUpdateCommand = cmd('acl token update', 'Update an ACL token', `Usage: trellis acl token update [options]

  This command will update a token. Some parts such as marking the token local
  cannot be changed. Policies, roles and identities given replace the token's
  (the -append-* flags add to them instead).

          $ trellis acl token update -id 986193 -description "WonderToken"`, [
  ID_FLAG,
  { name: 'description', kind: 'string', placeholder: 'value', usage: 'A description of the token' },
  ...LINK_FLAGS,
  { name: 'append-policy-id', kind: 'list', placeholder: 'value', usage: 'ID of a policy to add to this token. May be specified multiple times' },
  { name: 'append-policy-name', kind: 'list', placeholder: 'value', usage: 'Name of a policy to add to this token. May be specified multiple times' },
  FORMAT, META,
], async (ctx, flags, client) => {
  let id = tokenId(flags);
  if (id === '') {
    ctx.ui.error('Cannot update a token without specifying the -id parameter');
    return 1;
  }
  try {
    id = await fullTokenId(client, id);
    const t = await call(client, 'GET', `/v1/acl/token/${encodeURIComponent(id)}`) as Obj;
    const replace = policyLinks(flags);
    const append = policyLinks(flags, 'append-');
    const body: Obj = {
      ...t,
      Description: flagString(flags, 'description') ?? t.Description,
      Policies: [...(replace.length > 0 ? replace : links(t.Policies).map((l) => ({ ID: l.ID }))), ...append],
      Roles: roleLinks(flags).length > 0 ? roleLinks(flags) : links(t.Roles).map((l) => ({ ID: l.ID })),
      ServiceIdentities: flagList(flags, 'service-identity').length > 0 ? serviceIdentities(flags) : t.ServiceIdentities,
      NodeIdentities: flagList(flags, 'node-identity').length > 0 ? nodeIdentities(flags) : t.NodeIdentities,
    };
    delete body.SecretID;
    const updated = await call(client, 'PUT', `/v1/acl/token/${encodeURIComponent(id)}`, body) as Obj;
    ctx.io.stdout.write('Token updated successfully.\n');
    return show(ctx, flags, updated, formatToken) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Failed to update token ${id}: ${errText(err)}`);
    return 1;
  }
});

export const aclTokenDeleteCommand = cmd('acl token delete', 'Delete an ACL token', `Usage: trellis acl token delete [options] -id TOKEN

  Deletes an ACL token by providing either the ID or a unique ID prefix.

          $ trellis acl token delete -id b6b85`, [ID_FLAG], async (ctx, flags, client) => {
  let id = tokenId(flags);
  if (id === '') {
    ctx.ui.error('Must specify the -id parameter');
    return 1;
  }
  try {
    id = await fullTokenId(client, id);
    await call(client, 'DELETE', `/v1/acl/token/${encodeURIComponent(id)}`);
    ctx.io.stdout.write(`Token "${id}" deleted successfully\n`);
    return 0;
  } catch (err) {
    ctx.ui.error(`Error deleting token "${id}": ${errText(err)}`);
    return 1;
  }
});

// ---- policies --------------------------------------------------------------------------------------

// ---- read, list and delete of policies and roles: the same commands over two kinds -------------

interface NamedKind {
  /** "policy", "role": in paths and messages. */
  kind: string;
  title: string;
  idFlag: FlagSpec;
  nameFlag: FlagSpec;
  idFrom(client: ApiClient, flags: ParsedFlags): Promise<string>;
  listPath: string;
  format(o: Obj, meta: boolean): string;
  formatListed(o: Obj, meta: boolean): string;
}

function needIdOrName(ctx: CommandContext, flags: ParsedFlags): boolean {
  if (flagString(flags, 'id') || flagString(flags, 'name')) return true;
  ctx.ui.error('Must specify either the -id or -name parameters');
  return false;
}

function readCommand(k: NamedKind, synopsis: string, help: string): Command {
  return cmd(`acl ${k.kind} read`, synopsis, help, [k.idFlag, k.nameFlag, FORMAT, META], async (ctx, flags, client) => {
    if (!needIdOrName(ctx, flags)) return 1;
    try {
      const id = await k.idFrom(client, flags);
      return show(ctx, flags, await call(client, 'GET', `/v1/acl/${k.kind}/${encodeURIComponent(id)}`) as Obj, k.format) ? 0 : 1;
    } catch (err) {
      ctx.ui.error(`Error reading ${k.kind} "${flagString(flags, 'id') ?? flagString(flags, 'name')}": ${errText(err)}`);
      return 1;
    }
  });
}

function listCommand(k: NamedKind, synopsis: string, help: string): Command {
  return cmd(`acl ${k.kind} list`, synopsis, help, [FORMAT, META], async (ctx, flags, client) => {
    try {
      return show(ctx, flags, await call(client, 'GET', k.listPath) as Obj[], k.formatListed) ? 0 : 1;
    } catch (err) {
      ctx.ui.error(`Failed to retrieve the ${k.kind} list: ${errText(err)}`);
      return 1;
    }
  });
}

function deleteCommand(k: NamedKind, synopsis: string, help: string): Command {
  return cmd(`acl ${k.kind} delete`, synopsis, help, [k.idFlag, k.nameFlag], async (ctx, flags, client) => {
    if (!needIdOrName(ctx, flags)) return 1;
    let id = '';
    try {
      id = await k.idFrom(client, flags);
      await call(client, 'DELETE', `/v1/acl/${k.kind}/${encodeURIComponent(id)}`);
      ctx.io.stdout.write(`${k.title} "${id}" deleted successfully\n`);
      return 0;
    } catch (err) {
      ctx.ui.error(`Error deleting ${k.kind} "${id || flagString(flags, 'name')}": ${errText(err)}`);
      return 1;
    }
  });
}

const POLICY_ID: FlagSpec = { name: 'id', kind: 'string', placeholder: 'value', usage: 'The ID of the policy. It may be specified as a unique ID prefix but will error if the prefix matches multiple policy IDs' };
const POLICY_NAME: FlagSpec = { name: 'name', kind: 'string', placeholder: 'value', usage: 'The name of the policy' };

async function policyIdFrom(client: ApiClient, flags: ParsedFlags): Promise<string> {
  const id = flagString(flags, 'id') ?? '';
  if (id !== '') {
    if (id.length >= 36) return id;
    const list = await call(client, 'GET', '/v1/acl/policies') as Obj[];
    const m = list.filter((p) => String(p.ID).startsWith(id));
    if (m.length !== 1) throw new ApiError('ERR_HTTP_STATUS', m.length === 0 ? `No such policy ID with prefix: ${id}` : `Policy ID prefix is ambiguous: ${id}`);
    return String(m[0]!.ID);
  }
  const name = flagString(flags, 'name') ?? '';
  const p = await call(client, 'GET', `/v1/acl/policy/name/${encodeURIComponent(name)}`) as Obj;
  return String(p.ID);
}

const POLICY: NamedKind = { kind: 'policy', title: 'Policy', idFlag: POLICY_ID, nameFlag: POLICY_NAME, idFrom: policyIdFrom, listPath: '/v1/acl/policies', format: formatPolicy, formatListed: formatPolicyStub };

export const aclPolicyCreateCommand = cmd('acl policy create', 'Create an ACL policy', `Usage: trellis acl policy create -name NAME [options]

  Both the -rules and -from-file options may be used: -rules takes the rules
  text, "@file" for a file or "-" for stdin.

          $ trellis acl policy create -name "new-policy" -description "This is an example policy" -rules @rules.hcl`, [
  POLICY_NAME,
  { name: 'description', kind: 'string', placeholder: 'value', usage: 'A description of the policy' },
  { name: 'rules', kind: 'string', placeholder: 'value', usage: 'The policy rules. May be prefixed with \'@\' to indicate that the value is a file path to load the rules from. \'-\' may also be given to indicate that the rules are available on stdin' },
  { name: 'valid-datacenter', kind: 'list', placeholder: 'value', usage: 'Datacenter that the policy should be valid within. This flag may be specified multiple times' },
  FORMAT, META,
], async (ctx, flags, client) => {
  const name = flagString(flags, 'name') ?? '';
  if (name === '') {
    ctx.ui.error('Missing required \'-name\' flag');
    return 1;
  }
  try {
    const rules = await dataSource(ctx, flagString(flags, 'rules') ?? '');
    const p = await call(client, 'PUT', '/v1/acl/policy', {
      Name: name, Description: flagString(flags, 'description') ?? '', Rules: rules, Datacenters: flagList(flags, 'valid-datacenter'),
    }) as Obj;
    return show(ctx, flags, p, formatPolicy) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Failed to create new policy: ${err instanceof Error && !(err instanceof ApiError) ? err.message : errText(err)}`);
    return 1;
  }
});

export const aclPolicyReadCommand = readCommand(POLICY, 'Read an ACL policy', `Usage: trellis acl policy read [options] POLICY

  This command will retrieve and print out the details of a single policy.

          $ trellis acl policy read -id fdabbcb5-9de5-4b1a-961f-77214ae88cba
          $ trellis acl policy read -name my-policy`);

export const aclPolicyListCommand = listCommand(POLICY, 'Lists ACL policies', `Usage: trellis acl policy list [options]

  Lists all the ACL policies.

          $ trellis acl policy list`);

export const aclPolicyUpdateCommand = cmd('acl policy update', 'Update an ACL policy', `Usage: trellis acl policy update [options]

  Updates a policy. The -name, -description and -rules given replace the policy's.

          $ trellis acl policy update -id 35b8 -rules @rules.hcl`, [
  POLICY_ID,
  { name: 'name', kind: 'string', placeholder: 'value', usage: 'The policy name; with -id, renames the policy' },
  { name: 'description', kind: 'string', placeholder: 'value', usage: 'A description of the policy' },
  { name: 'rules', kind: 'string', placeholder: 'value', usage: 'The policy rules. May be prefixed with \'@\' to indicate that the value is a file path to load the rules from. \'-\' may also be given to indicate that the rules are available on stdin' },
  FORMAT, META,
], async (ctx, flags, client) => {
  if (!flagString(flags, 'id') && !flagString(flags, 'name')) {
    ctx.ui.error('Cannot update a policy without specifying the -id or -name parameter');
    return 1;
  }
  try {
    const id = await policyIdFrom(client, flagString(flags, 'id') ? flags : flags);
    const cur = await call(client, 'GET', `/v1/acl/policy/${encodeURIComponent(id)}`) as Obj;
    const rules = flagString(flags, 'rules') !== undefined ? await dataSource(ctx, flagString(flags, 'rules')!) : cur.Rules;
    const p = await call(client, 'PUT', `/v1/acl/policy/${encodeURIComponent(id)}`, {
      ID: id, Name: flagString(flags, 'id') ? (flagString(flags, 'name') ?? cur.Name) : cur.Name,
      Description: flagString(flags, 'description') ?? cur.Description, Rules: rules, Datacenters: cur.Datacenters ?? [],
    }) as Obj;
    return show(ctx, flags, p, formatPolicy) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Error updating policy: ${err instanceof Error && !(err instanceof ApiError) ? err.message : errText(err)}`);
    return 1;
  }
});

export const aclPolicyDeleteCommand = deleteCommand(POLICY, 'Delete an ACL policy', `Usage: trellis acl policy delete [options] -id POLICY

  Deletes an ACL policy by providing either the ID or a unique ID prefix, or its name.

          $ trellis acl policy delete -id b6b85
          $ trellis acl policy delete -name my-policy`);

// ---- roles -----------------------------------------------------------------------------------------

async function roleIdFrom(client: ApiClient, flags: ParsedFlags): Promise<string> {
  const id = flagString(flags, 'id') ?? '';
  if (id !== '') return id;
  const r = await call(client, 'GET', `/v1/acl/role/name/${encodeURIComponent(flagString(flags, 'name') ?? '')}`) as Obj;
  return String(r.ID);
}

const ROLE_ID: FlagSpec = { name: 'id', kind: 'string', placeholder: 'value', usage: 'The ID of the role' };
const ROLE_NAME: FlagSpec = { name: 'name', kind: 'string', placeholder: 'value', usage: 'The name of the role' };
const ROLE_LINKS = LINK_FLAGS.filter((f) => !f.name.startsWith('role-'));
const ROLE: NamedKind = { kind: 'role', title: 'Role', idFlag: ROLE_ID, nameFlag: ROLE_NAME, idFrom: roleIdFrom, listPath: '/v1/acl/roles', format: formatRole, formatListed: formatRole };

export const aclRoleCreateCommand = cmd('acl role create', 'Create an ACL role', `Usage: trellis acl role create -name NAME [options]

  Create a new role:

          $ trellis acl role create -name "new-role" -description "This is an example role" -policy-name "acl-replication"`, [
  ROLE_NAME, { name: 'description', kind: 'string', placeholder: 'value', usage: 'A description of the role' }, ...ROLE_LINKS, FORMAT, META,
], async (ctx, flags, client) => {
  const name = flagString(flags, 'name') ?? '';
  if (name === '') {
    ctx.ui.error('Missing required \'-name\' flag');
    return 1;
  }
  try {
    const r = await call(client, 'PUT', '/v1/acl/role', {
      Name: name, Description: flagString(flags, 'description') ?? '', Policies: policyLinks(flags),
      ServiceIdentities: serviceIdentities(flags), NodeIdentities: nodeIdentities(flags),
    }) as Obj;
    return show(ctx, flags, r, formatRole) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Failed to create new role: ${errText(err)}`);
    return 1;
  }
});

export const aclRoleReadCommand = readCommand(ROLE, 'Read an ACL role', `Usage: trellis acl role read [options] ROLE

          $ trellis acl role read -id fdabbcb5-9de5-4b1a-961f-77214ae88cba
          $ trellis acl role read -name my-role`);

export const aclRoleListCommand = listCommand(ROLE, 'Lists ACL roles', `Usage: trellis acl role list [options]

          $ trellis acl role list`);

export const aclRoleUpdateCommand = cmd('acl role update', 'Update an ACL role', `Usage: trellis acl role update [options]

  Updates a role; policies and identities given replace the role's.

          $ trellis acl role update -id abcd -description "new description"`, [
  ROLE_ID, ROLE_NAME, { name: 'description', kind: 'string', placeholder: 'value', usage: 'A description of the role' }, ...ROLE_LINKS, FORMAT, META,
], async (ctx, flags, client) => {
  const id = flagString(flags, 'id') ?? '';
  if (id === '') {
    ctx.ui.error('Cannot update a role without specifying the -id parameter');
    return 1;
  }
  try {
    const cur = await call(client, 'GET', `/v1/acl/role/${encodeURIComponent(id)}`) as Obj;
    const r = await call(client, 'PUT', `/v1/acl/role/${encodeURIComponent(id)}`, {
      ID: id, Name: flagString(flags, 'name') ?? cur.Name, Description: flagString(flags, 'description') ?? cur.Description,
      Policies: policyLinks(flags).length > 0 ? policyLinks(flags) : links(cur.Policies).map((l) => ({ ID: l.ID })),
      ServiceIdentities: flagList(flags, 'service-identity').length > 0 ? serviceIdentities(flags) : cur.ServiceIdentities ?? [],
      NodeIdentities: flagList(flags, 'node-identity').length > 0 ? nodeIdentities(flags) : cur.NodeIdentities ?? [],
    }) as Obj;
    return show(ctx, flags, r, formatRole) ? 0 : 1;
  } catch (err) {
    ctx.ui.error(`Failed to update role ${id}: ${errText(err)}`);
    return 1;
  }
});

export const aclRoleDeleteCommand = deleteCommand(ROLE, 'Delete an ACL role', `Usage: trellis acl role delete [options] -id ROLE

          $ trellis acl role delete -id b6b85
          $ trellis acl role delete -name my-role`);

export const aclSetAgentTokenCommand = cmd('acl set-agent-token', 'Assign tokens for the Trellis agent', `Usage: trellis acl set-agent-token [options] TYPE TOKEN

  This command will set the corresponding token for the agent to use. If token
  persistence is enabled (acl.enable_token_persistence) the token is kept in the
  data dir and used again after a restart.

  Token types:

    default                            The default token is the token that the agent will use for
                                       both internal agent operations and operations initiated by
                                       the HTTP and DNS interfaces when no specific token is provided.

    agent                              The token that the agent will use for internal agent operations.

    agent_recovery                     The token used to access the agent's own endpoints while
                                       no server can resolve tokens.

    replication                        The token that the servers will use to replicate ACLs from
                                       the primary datacenter.

    config_file_service_registration   The token for services and checks from config files.

    dns                                The token used for DNS lookups.

  Example:

    $ trellis acl set-agent-token default c4d0f8df-3aba-4ab6-a7a0-35b760dc29a1`, [], async (ctx, flags, client) => {
  if (flags.args.length !== 2) {
    ctx.ui.error('Missing TYPE and TOKEN arguments');
    return 1;
  }
  const [kind, token] = flags.args as [string, string];
  try {
    await call(client, 'PUT', `/v1/agent/token/${encodeURIComponent(kind)}`, { Token: token });
    ctx.io.stdout.write(`ACL token "${kind}" set successfully\n`);
    return 0;
  } catch (err) {
    ctx.ui.error(`Failed to set ACL token "${kind}": ${errText(err)}`);
    return 1;
  }
});

export const ACL_COMMANDS: readonly Command[] = [
  aclBootstrapCommand, aclSetAgentTokenCommand,
  aclTokenCreateCommand, aclTokenReadCommand, aclTokenListCommand, aclTokenUpdateCommand, aclTokenDeleteCommand,
  aclPolicyCreateCommand, aclPolicyReadCommand, aclPolicyListCommand, aclPolicyUpdateCommand, aclPolicyDeleteCommand,
  aclRoleCreateCommand, aclRoleReadCommand, aclRoleListCommand, aclRoleUpdateCommand, aclRoleDeleteCommand,
];

export const ACL_GROUPS: Readonly<Record<string, string>> = {
  acl: 'Interact with Trellis\'s ACLs',
  'acl token': 'Manage Trellis\'s ACL tokens',
  'acl policy': 'Manage Trellis\'s ACL policies',
  'acl role': 'Manage Trellis\'s ACL roles',
};
