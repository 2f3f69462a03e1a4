/**
 * Text that came from a file or a link (tensor names, metadata, config keys, model paths) shown in
 * a message: cut to a length a terminal can show, with control characters, terminal escape codes
 * and invisible direction overrides written out as `\xNN` / `\uNNNN` so that they cannot move the
 * cursor, recolour the terminal or disguise the rest of the message. Used by every message of
 * storage, config and the CLI that echoes such text.
 */

/** Characters of untrusted text a message shows before it is cut. */
export const UNTRUSTED_MAX_CHARS = 200;

// C0 and C1 controls (ESC, CSI…), DEL, line/paragraph separators, bidi embeddings, overrides and
// isolates, zero-width no-break space, and lone surrogates.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const UNSAFE_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function escapeOne(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * `text` (or any value, written as JSON) safe to print: at most `max` characters of it, then how
 * many more there were, with unsafe characters escaped.
 */
export function untrustedText(value: unknown, max: number = UNTRUSTED_MAX_CHARS): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  let shown = text;
  let rest = '';
  if (text.length > max) {
    let cut = max;
    // Do not split a surrogate pair.
    if (/[\ud800-\udbff]/.test(text[cut - 1] ?? '')) cut--;
    shown = text.slice(0, cut);
    rest = `… (${text.length - cut} more characters)`;
  }
  return shown.replace(UNSAFE, escapeOne) + rest;
}

/**
 * A whole message (which may span lines) with unsafe characters escaped, as a last line of defence
 * where messages reach a terminal. Idempotent: escaping writes only printable characters.
 */
export function escapeMessage(message: string): string {
  return message.replace(UNSAFE_BUT_NEWLINE, escapeOne);
}
