// One mesh gateway in a process of its own, for the benchmark (its CPU time and RSS are read from
// /proc/<pid>): the same startMeshGateway that `trellis connect gateway` runs, with the options
// the CLI does not offer (a static remote datacenter, a stand-in datacenter name).
//
//   node packages/gateway/bench/meshGatewayProcess.ts '<MeshGatewayOptions as JSON>'
import { startMeshGateway, createLogger } from '../src/index.ts';

const opts = JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof startMeshGateway>[0];
const gw = await startMeshGateway({ ...opts, logger: createLogger({ level: 'warn', name: 'mesh-gateway' }) });
process.stdout.write(`ready ${gw.addresses().map((a) => `${a.address}:${a.port}`).join(' ')}\n`);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { void gw.stop().then(() => process.exit(0)); });
