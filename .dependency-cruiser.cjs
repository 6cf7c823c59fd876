// Layer rules, checked by `npm test` (scripts/test.ts) on packages/*/src. Each rule has a test that
// plants a violation and expects it caught (packages/agent/test/layers.test.ts).
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles, type-only imports included: a cycle means two modules are one.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'state-is-the-bottom',
      comment: 'state/ (the FSM) imports nothing of the agent above it: only itself, npm libraries and the pure chain compiler.',
      severity: 'error',
      from: { path: '^packages/agent/src/state/' },
      // The one exception: the pure discovery chain compiler, which the FSM runs to refuse a write
      // that leaves a chain uncompilable (Consul's validateProposedConfigEntryInGraph).
      to: { path: '^packages/', pathNot: ['^packages/agent/src/state/', '^packages/agent/src/connect/discoveryChain[.]ts$'] },
    },
    {
      name: 'pure-cores-do-no-io',
      comment: 'Pure cores (Raft, SWIM, the connect/ compilers) import only their own folder (and the Raft error classes, plain data): no node builtins, no npm packages, nothing with I/O.',
      severity: 'error',
      from: { path: '^(packages/raft/src/core|packages/agent/src/gossip/core|packages/agent/src/connect)/' },
      to: { pathNot: ['^$1/', '^packages/raft/src/errors[.]ts$'] },
    },
    {
      name: 'acl-core-is-pure',
      comment: 'The ACL rule parser and authorizer (acl/) import only their own folder and the pure HCL 1 parser: no node builtins, no npm packages, nothing with I/O.',
      severity: 'error',
      from: { path: '^packages/agent/src/acl/' },
      to: { pathNot: ['^packages/agent/src/acl/', '^packages/agent/src/config/hcl[.]ts$'] },
    },
    {
      name: 'gateway-never-imports-agent',
      comment: 'The data plane knows the control plane only by its HTTP API, so it can run on a host of its own.',
      severity: 'error',
      from: { path: '^packages/gateway/' },
      to: { path: '^packages/agent/' },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/' },
  },
};
