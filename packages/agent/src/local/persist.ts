// Services and checks registered through the HTTP API survive a restart of the agent, as in Consul
// (agent.persistService / persistCheck): each is a JSON file under <data-dir>/services and
// <data-dir>/checks, named by the SHA-256 of its ID, written to a temporary file and renamed into
// place. Definitions from configuration files are not persisted: the files are their source.
// A file that cannot be read or parsed is reported and skipped; it never stops the agent.
// With ACLs on, a service keeps the token it was registered with (Consul's persistedService.Token):
// after a restart anti-entropy writes its catalog rows with that token, not the agent's. The files
// are 0600 in a 0700 directory, as Consul's (the data dir holds secrets already: Raft, tokens).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { CheckType } from '../structs/check.ts';
import type { ServiceFields } from '../state/types.ts';

export type PersistedCheck = CheckType & { CheckID: string; ServiceID?: string };

/** What LocalState calls; every method is synchronous and small (one file). */
export interface LocalPersistence {
  saveService(svc: ServiceFields, opts?: { locallyRegisteredAsSidecar?: boolean }): void;
  removeService(id: string): void;
  saveCheck(check: PersistedCheck): void;
  removeCheck(id: string): void;
}

const FORMAT = 1;

function fileName(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export class FilePersistence implements LocalPersistence {
  readonly #services: string;
  readonly #checks: string;
  readonly #serviceToken: (id: string) => string | undefined;

  /** `serviceToken`: the token a service was registered with (ACLs on), saved beside it. */
  constructor(dataDir: string, opts: { serviceToken?: (id: string) => string | undefined } = {}) {
    this.#services = path.join(dataDir, 'services');
    this.#checks = path.join(dataDir, 'checks');
    this.#serviceToken = opts.serviceToken ?? (() => undefined);
  }

  saveService(svc: ServiceFields, opts: { locallyRegisteredAsSidecar?: boolean } = {}): void {
    const token = this.#serviceToken(svc.ID);
    // Consul's persistedService carries the same flag: a sidecar still goes with its service after a restart.
    this.#write(this.#services, svc.ID, {
      Format: FORMAT, ...(token ? { Token: token } : {}), Service: svc, ...(opts.locallyRegisteredAsSidecar ? { LocallyRegisteredAsSidecar: true } : {}),
    });
  }

  removeService(id: string): void {
    fs.rmSync(path.join(this.#services, fileName(id)), { force: true });
  }

  saveCheck(check: PersistedCheck): void {
    this.#write(this.#checks, check.CheckID, { Format: FORMAT, Check: check });
  }

  removeCheck(id: string): void {
    fs.rmSync(path.join(this.#checks, fileName(id)), { force: true });
  }

  /** Everything persisted, and a message for each file that could not be used. */
  load(): { services: ServiceFields[]; sidecarIds: Set<string>; serviceTokens: Map<string, string>; checks: PersistedCheck[]; problems: string[] } {
    const problems: string[] = [];
    const sidecarIds = new Set<string>();
    const serviceTokens = new Map<string, string>();
    const read = <T>(dir: string, key: 'Service' | 'Check', idField: 'ID' | 'CheckID'): T[] => {
      let names: string[];
      try {
        names = fs.readdirSync(dir).filter((n) => /^[0-9a-f]{64}$/.test(n));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`cannot list ${dir}: ${(err as Error).message}`);
        return [];
      }
      const out: T[] = [];
      for (const n of names.sort()) {
        const file = path.join(dir, n);
        try {
          const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
          const item = doc[key] as Record<string, unknown> | undefined;
          if (doc.Format !== FORMAT || typeof item !== 'object' || item === null || typeof item[idField] !== 'string') {
            throw new Error(`not a persisted ${key.toLowerCase()} (format ${String(doc.Format)})`);
          }
          out.push(item as T);
          if (doc.LocallyRegisteredAsSidecar === true) sidecarIds.add(item[idField] as string);
          if (key === 'Service' && typeof doc.Token === 'string' && doc.Token !== '') serviceTokens.set(item[idField] as string, doc.Token);
        } catch (err) {
          problems.push(`skipping ${file}: ${(err as Error).message}; delete the file or register the ${key.toLowerCase()} again`);
        }
      }
      return out;
    };
    return {
      services: read<ServiceFields>(this.#services, 'Service', 'ID'),
      sidecarIds,
      serviceTokens,
      checks: read<PersistedCheck>(this.#checks, 'Check', 'CheckID'),
      problems,
    };
  }

  #write(dir: string, id: string, doc: unknown): void {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, fileName(id));
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(doc), { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
}
