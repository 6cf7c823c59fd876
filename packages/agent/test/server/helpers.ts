// Shared helpers of the server tests.
import { pino } from 'pino';
import type { Logger } from '../../src/logger.ts';

/** A logger that drops everything (TRELLIS_TEST_LOG=debug shows it). */
export const quietLogger: Logger = pino({ level: process.env.TRELLIS_TEST_LOG ?? 'silent' });
