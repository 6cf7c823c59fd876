// Preloaded (NODE_OPTIONS=--import) into a `trellis connect proxy` process by proxyProcess.test.ts:
// records every module file the process loads, written to $TRELLIS_LOADED_FILE at exit, so the
// test can check the proxy never loads the agent runtime (libp2p, fastify, Raft).
import fs from 'node:fs';
import module from 'node:module';

const loaded = new Set();
module.registerHooks({
  load(url, context, nextLoad) {
    if (url.startsWith('file:')) loaded.add(url);
    return nextLoad(url, context);
  },
});
const out = process.env.TRELLIS_LOADED_FILE;
process.on('exit', () => { if (out) fs.writeFileSync(out, [...loaded].join('\n')); });
