// The loop every secondary-datacenter leader task shares (config entry replication, ACL
// replication, the secondary CA): a blocking read of the primary datacenter, the changes it calls
// for, and the index to block on next; on failure, exponential backoff from 0.5 s to 10 s, with the
// first failure and every tenth logged (a primary that is down for a while is one message, not
// hundreds) and one line when it recovers. Runs while this server leads; stop() on losing it.
import type { Logger } from '../logger.ts';
import { sleep } from '../sleep.ts';

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;

export interface FollowPrimaryOptions {
  /** What it does, for the log lines ("config entry replication"). */
  what: string;
  log: Logger;
  /** One blocking read and its changes; returns the index to block on next. Throws on failure. */
  round(index: number, signal: AbortSignal): Promise<number>;
  /** After a failure, block from index 0 again (a fresh full read) rather than the last index seen. */
  restartFromZero?: boolean;
  /** The log line after the first failure (and every tenth): what keeps serving meanwhile. */
  failureMessage: string;
  /** Extra fields for that line. */
  failureFields?: Record<string, unknown>;
  /** Every failure, for status endpoints (before the backoff sleep). */
  onFailure?(err: Error): void;
}

export class FollowPrimary {
  readonly #o: FollowPrimaryOptions;
  #run: AbortController | undefined;

  constructor(o: FollowPrimaryOptions) {
    this.#o = o;
  }

  get running(): boolean {
    return this.#run !== undefined;
  }

  /** Starts the loop unless it runs; `onExit` is called when that loop ends (stopped or not). */
  start(onExit?: () => void): boolean {
    if (this.#run) return false;
    const ac = new AbortController();
    this.#run = ac;
    void this.#loop(ac.signal).finally(() => {
      if (this.#run === ac) this.#run = undefined;
      onExit?.();
    });
    return true;
  }

  /** Stops the loop; false when it was not running. */
  stop(): boolean {
    if (!this.#run) return false;
    this.#run.abort();
    this.#run = undefined;
    return true;
  }

  async #loop(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    let index = 0;
    let backoff = MIN_BACKOFF_MS;
    let failures = 0;
    while (!signal.aborted) {
      try {
        index = await o.round(index, signal);
        backoff = MIN_BACKOFF_MS;
        if (failures > 0) o.log.info({ failures }, `${o.what} recovered`);
        failures = 0;
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        o.onFailure?.(err as Error);
        if (failures === 1 || failures % 10 === 0) {
          o.log.warn({ err: (err as Error).message, failures, retryInMs: backoff, ...o.failureFields }, o.failureMessage);
        }
        await sleep(backoff, signal);
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
        if (o.restartFromZero) index = 0;
      }
    }
  }
}
