// `trellis keygen`: a new gossip encryption key (32 random bytes, standard base64), as Consul's.

import { randomBytes } from 'node:crypto';
import type { Command } from '../command.ts';
import { tooManyArgs } from '../command.ts';

export const keygenCommand: Command = {
  name: 'keygen',
  synopsis: 'Generates a new encryption key',
  help: `Usage: trellis keygen

  Generates a new 32-byte encryption key that can be used to configure the
  agent to encrypt traffic (-encrypt or "encrypt" in a config file).`,
  flags: [],
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    ctx.ui.output(randomBytes(32).toString('base64'));
    return 0;
  },
};
