// Consul's StatusHandler (agent/checks/check.go): turns each run's result into a report, counting
// consecutive results so a flapping check does not flap the catalog.
//   - A passing or warning run is a success. It is reported once `SuccessBeforePassing` successes
//     in a row have been seen; until then nothing is reported.
//   - A critical run is a failure. After `FailuresBeforeCritical` failures in a row it is reported
//     as critical; after `FailuresBeforeWarning` (which defaults to FailuresBeforeCritical) it is
//     reported as warning; before that nothing is reported.
//   - Either kind of run resets the other's count. Both counters start at their threshold, so the
//     very first run is reported as it is, whatever the thresholds.
import type { CheckStatus } from '../state/types.ts';
import type { Logger } from '../logger.ts';

export interface StatusHandlerOptions {
  checkId: string;
  report(status: CheckStatus, output: string): void;
  logger: Logger;
  successBeforePassing?: number;
  failuresBeforeWarning?: number;
  failuresBeforeCritical?: number;
}

export class StatusHandler {
  readonly #checkId: string;
  readonly #report: (status: CheckStatus, output: string) => void;
  readonly #logger: Logger;
  readonly #successBeforePassing: number;
  readonly #failuresBeforeWarning: number;
  readonly #failuresBeforeCritical: number;
  #successes: number;
  #failures: number;

  constructor(opts: StatusHandlerOptions) {
    this.#checkId = opts.checkId;
    this.#report = opts.report;
    this.#logger = opts.logger;
    this.#successBeforePassing = Math.max(0, opts.successBeforePassing ?? 0);
    this.#failuresBeforeCritical = Math.max(0, opts.failuresBeforeCritical ?? 0);
    this.#failuresBeforeWarning = opts.failuresBeforeWarning && opts.failuresBeforeWarning > 0
      ? opts.failuresBeforeWarning
      : this.#failuresBeforeCritical;
    this.#successes = this.#successBeforePassing;
    this.#failures = this.#failuresBeforeCritical;
  }

  /** One run's result. */
  update(status: CheckStatus, output: string): void {
    const check = this.#checkId;
    if (status === 'passing' || status === 'warning') {
      this.#successes++;
      this.#failures = 0;
      if (this.#successes >= this.#successBeforePassing) {
        this.#logger.debug({ check, status }, 'check status updated');
        this.#report(status, output);
        return;
      }
      this.#logger.warn({ check, status, success_count: this.#successes, success_threshold: this.#successBeforePassing },
        'check passed but has not reached success threshold');
      return;
    }
    this.#failures++;
    this.#successes = 0;
    if (this.#failures >= this.#failuresBeforeCritical) {
      this.#logger.warn({ check }, 'check is now critical');
      this.#report(status, output);
      return;
    }
    if (this.#failures >= this.#failuresBeforeWarning) {
      this.#logger.warn({ check }, 'check is now warning');
      this.#report('warning', output);
      return;
    }
    this.#logger.warn({
      check, status, failure_count: this.#failures,
      warning_threshold: this.#failuresBeforeWarning, failure_threshold: this.#failuresBeforeCritical,
    }, 'check failed but has not reached warning/failure threshold');
  }
}
