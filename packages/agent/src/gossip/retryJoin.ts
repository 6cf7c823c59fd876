// Consul's -join / -retry-join: try the addresses until some member answers, every retryInterval,
// at most retryMax attempts (0: forever), and stop when the signal aborts (agent shutdown).
import type { Logger } from '../logger.ts';
import { GossipError } from './core/errors.ts';
import type { GossipPool } from './libp2p/pool.ts';

export interface RetryJoinOptions {
  intervalMs: number;
  /** 0 retries forever (Consul retry_max default). */
  maxAttempts: number;
  signal?: AbortSignal;
  logger?: Logger;
}

/** Resolves with the number of members joined on the first success; rejects with ERR_JOIN_FAILED after maxAttempts. */
export async function retryJoin(pool: Pick<GossipPool, 'join'>, addrs: string[], o: RetryJoinOptions): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted) throw new GossipError('ERR_NOT_RUNNING', 'retry join cancelled');
    try {
      const n = await pool.join(addrs);
      o.logger?.info({ joined: n, attempt }, 'Join cluster completed. Synced with initial agents');
      return n;
    } catch (err) {
      if (o.maxAttempts > 0 && attempt >= o.maxAttempts) {
        throw new GossipError('ERR_JOIN_FAILED', `max join retry exhausted after ${attempt} attempts: ${(err as Error).message}`, { cause: err });
      }
      o.logger?.warn({ attempt, error: (err as Error).message, retryInMs: o.intervalMs }, 'Join cluster failed, will retry');
    }
    if (o.signal?.aborted) continue;
    await new Promise<void>((resolve) => {
      const onAbort = (): void => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        o.signal?.removeEventListener('abort', onAbort);
        resolve();
      }, o.intervalMs);
      o.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
