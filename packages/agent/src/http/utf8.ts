// JSON bodies must be UTF-8 (RFC 8259 §8.1). Buffer#toString('utf8') would turn every invalid
// sequence into U+FFFD without a word, so a service registered with a broken name would be stored
// under a different one than the client sent. Bodies are checked here first, and a bad one is
// refused with the field it was found in, so the client can tell which of its values is broken.
import { isUtf8 } from 'node:buffer';

/** Byte offset of the first invalid UTF-8 sequence in `body`, or -1 when it is all valid. */
export function firstInvalidUtf8(body: Uint8Array): number {
  if (isUtf8(body)) return -1;
  // The lenient decoding re-encodes byte for byte up to the first invalid sequence (which becomes
  // EF BF BD), so the first difference is where it starts.
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const again = Buffer.from(buf.toString('utf8'));
  let i = 0;
  while (i < buf.length && i < again.length && buf[i] === again[i]) i++;
  return i;
}

type Frame = { kind: 'object'; key: string | undefined; wantKey: boolean } | { kind: 'array'; index: number };

/**
 * Which field of a JSON document `prefix` (the document's text up to a point) ends inside: e.g.
 * `Service.Service`, `[0].KV.Key`; "a key of X" when it ends inside an object key; "the body" at
 * the top level. A scan of the structure only; the prefix need not be valid JSON on its own.
 */
export function jsonFieldAt(prefix: string): string {
  const stack: Frame[] = [];
  let inString = false;
  let escaped = false;
  let stringStart = 0;
  let stringIsKey = false;
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') {
        inString = false;
        const top = stack.at(-1);
        if (stringIsKey && top?.kind === 'object') {
          const raw = prefix.slice(stringStart, i + 1);
          try {
            top.key = JSON.parse(raw) as string;
          } catch {
            top.key = raw.slice(1, -1);
          }
          top.wantKey = false;
        }
      }
      continue;
    }
    switch (c) {
      case '"': {
        inString = true;
        stringStart = i;
        const top = stack.at(-1);
        stringIsKey = top?.kind === 'object' && top.wantKey;
        break;
      }
      case '{': stack.push({ kind: 'object', key: undefined, wantKey: true }); break;
      case '[': stack.push({ kind: 'array', index: 0 }); break;
      case '}': case ']': stack.pop(); break;
      case ',': {
        const top = stack.at(-1);
        if (top?.kind === 'array') top.index++;
        else if (top?.kind === 'object') {
          top.wantKey = true;
          top.key = undefined;
        }
        break;
      }
    }
  }
  const inKey = inString && stringIsKey;
  let path = '';
  for (const f of inKey ? stack.slice(0, -1) : stack) {
    if (f.kind === 'array') path += `[${f.index}]`;
    else if (f.key !== undefined) path += path === '' ? f.key : `.${f.key}`;
  }
  const where = path === '' ? 'the body' : path;
  return inKey ? `a key of ${where}` : where;
}

/** null when `body` is UTF-8; else a sentence naming the field with the invalid bytes and their offset. */
export function invalidUtf8Error(body: Uint8Array): string | null {
  const at = firstInvalidUtf8(body);
  if (at < 0) return null;
  const prefix = Buffer.from(body.buffer, body.byteOffset, at).toString('utf8');
  return `invalid UTF-8 in ${jsonFieldAt(prefix)} at offset ${at + 1}: JSON text must be UTF-8`;
}
