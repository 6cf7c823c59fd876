// Configuration errors. Every one names what was wrong (the flag, the key path and file, the value)
// and, where there is one, what is allowed; `code` is stable so callers and tests can branch on it.

export type ConfigErrorCode =
  | 'ERR_CONFIG_READ'          // a file or directory could not be read
  | 'ERR_CONFIG_PARSE'         // a file is not valid JSON or HCL
  | 'ERR_CONFIG_UNKNOWN_KEY'   // a key Trellis (and Consul) does not know
  | 'ERR_CONFIG_TYPE'          // a value of the wrong JSON type
  | 'ERR_CONFIG_UNSUPPORTED'   // a security setting Trellis cannot enforce yet (refused, never ignored)
  | 'ERR_CONFIG_INVALID'       // a value outside what is allowed (validateConfig)
  | 'ERR_FLAG';                // a command-line flag problem (see FlagError for the detail)

export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  /** Key path of the offending setting, e.g. "ports.http" or "services[0].checks[1].interval". */
  readonly field: string | undefined;
  /** The config file it came from, when it came from one. */
  readonly file: string | undefined;
  constructor(code: ConfigErrorCode, message: string, opts: { field?: string; file?: string } = {}) {
    super(message);
    this.name = 'ConfigError';
    this.code = code;
    this.field = opts.field;
    this.file = opts.file;
  }
}
