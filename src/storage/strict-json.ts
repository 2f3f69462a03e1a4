/**
 * JSON read the way serde_json (the Rust safetensors reader's parser) reads it, where JSON.parse
 * differs: nesting is limited (serde_json stops at 128 levels), numbers keep how they were written
 * (`64`, `64e0`, `64.0` and `-0` are different to serde: only the first is an integer), objects
 * keep every key in order (JSON.parse silently keeps the last of two equal keys), and a `\u`
 * escape of a lone surrogate is an error. Iterative, so no input can overflow the stack.
 */

/** serde_json's recursion limit: a value may open at most 127 nested arrays/objects. */
export const MAX_JSON_DEPTH = 127;

export type StrictJsonValue = string | boolean | null | JsonNumber | JsonObject | StrictJsonValue[];

/** A number as written in the text. */
export class JsonNumber {
  constructor(readonly text: string) {}

  /** The value when it is written as a non-negative integer that JavaScript holds exactly. */
  get count(): number | undefined {
    if (!/^(?:0|[1-9][0-9]*)$/.test(this.text)) return undefined;
    const n = Number(this.text);
    return Number.isSafeInteger(n) ? n : undefined;
  }
}

/** An object's members in file order, duplicates included. */
export class JsonObject {
  readonly entries: [string, StrictJsonValue][] = [];
}

export class StrictJsonError extends Error {
  constructor(
    message: string,
    /** Index in the text where the problem is. */
    readonly position: number,
  ) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

interface Open {
  readonly container: JsonObject | StrictJsonValue[];
  /** The key waiting for its value (objects only). */
  key: string | null;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

export function parseStrictJson(text: string): StrictJsonValue {
  return new StrictJsonParser(text).parse();
}

/** One pass over the text; `i` is the index of the next character to read. */
class StrictJsonParser {
  private i = 0;
  private readonly n: number;
  private readonly stack: Open[] = [];
  private root: StrictJsonValue | undefined;
  private done = false;

  constructor(private readonly text: string) {
    this.n = text.length;
  }

  parse(): StrictJsonValue {
    // State: expecting a value here (after [, :, or a comma), else expecting , or a closer.
    let expectValue = true;
    while (!this.done) {
      this.skipSpace();
      if (this.i >= this.n) this.fail('unexpected end of the text');
      const top = this.stack[this.stack.length - 1];
      if (!expectValue) expectValue = this.afterValue(top!);
      // In an object, a value slot is first a key.
      else if (top && !Array.isArray(top.container) && top.key === null) top.key = this.readKey();
      else expectValue = this.readValue();
    }
    this.skipSpace();
    if (this.i < this.n) this.fail('trailing characters after the JSON value');
    return this.root!;
  }

  /** A value, or the opening of a container; whether a value is still expected (an open container's first). */
  private readValue(): boolean {
    const { text } = this;
    const c = text[this.i];
    if (c === '{' || c === '[') return this.open(c);
    if (c === '"') this.place(this.readString());
    else if (text.startsWith('true', this.i)) (this.i += 4), this.place(true);
    else if (text.startsWith('false', this.i)) (this.i += 5), this.place(false);
    else if (text.startsWith('null', this.i)) (this.i += 4), this.place(null);
    else {
      NUMBER.lastIndex = this.i;
      const match = NUMBER.exec(text);
      if (!match) this.fail(`unexpected character ${JSON.stringify(c)}`);
      this.i += match![0].length;
      this.place(new JsonNumber(match![0]));
    }
    return false;
  }

  /** Opens an array or object (an empty one is finished at once); whether a value is expected next. */
  private open(c: '{' | '['): boolean {
    if (this.stack.length >= MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
    this.i++;
    const container = c === '{' ? new JsonObject() : [];
    this.stack.push({ container, key: null });
    this.skipSpace();
    if (this.text[this.i] !== (c === '{' ? '}' : ']')) return true;
    this.i++;
    this.stack.pop();
    this.place(container);
    return false;
  }

  /** An object's key and its colon. */
  private readKey(): string {
    if (this.text[this.i] !== '"') this.fail('expected a string key');
    const key = this.readString();
    this.skipSpace();
    if (this.text[this.i] !== ':') this.fail("expected ':' after a key");
    this.i++;
    return key;
  }

  /** After a value inside a container: a comma (true: a value follows) or the closer. */
  private afterValue(top: Open): boolean {
    const c = this.text[this.i];
    const closer = Array.isArray(top.container) ? ']' : '}';
    if (c === ',') {
      this.i++;
      return true;
    }
    if (c !== closer) this.fail(`expected ',' or '${closer}'`);
    this.i++;
    this.stack.pop();
    this.place(top.container);
    return false;
  }

  /** Puts a finished value into the open container (or makes it the root). */
  private place(value: StrictJsonValue): void {
    const top = this.stack[this.stack.length - 1];
    if (!top) {
      this.root = value;
      this.done = true;
    } else if (Array.isArray(top.container)) {
      top.container.push(value);
    } else {
      top.container.entries.push([top.key!, value]);
      top.key = null;
    }
  }

  private readString(): string {
    const { text, n } = this;
    // text[i] is the opening quote.
    this.i++;
    let out = '';
    let start = this.i;
    while (true) {
      if (this.i >= n) this.fail('unterminated string');
      const c = text.charCodeAt(this.i);
      if (c === 0x22) {
        out += text.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail('control character in a string (it must be escaped)');
      if (c !== 0x5c) {
        this.i++;
        continue;
      }
      out += text.slice(start, this.i) + this.readEscape();
      start = this.i;
    }
  }

  /** The escape at `i` (its backslash), decoded. */
  private readEscape(): string {
    const e = this.text[this.i + 1];
    this.i += 2;
    switch (e) {
      case '"': return '"';
      case '\\': return '\\';
      case '/': return '/';
      case 'b': return '\b';
      case 'f': return '\f';
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'u': return this.readUnicodeEscape();
      default:
        return this.fail('invalid escape in a string', this.i - 2);
    }
  }

  /** The four hex digits after `\u` (and the low half of a surrogate pair, which must follow a high one). */
  private readUnicodeEscape(): string {
    const unit = this.readHex4(this.i);
    this.i += 4;
    if (unit >= 0xdc00 && unit <= 0xdfff) this.fail('lone trailing surrogate in a \\u escape', this.i - 6);
    if (unit < 0xd800 || unit > 0xdbff) return String.fromCharCode(unit);
    if (this.text[this.i] !== '\\' || this.text[this.i + 1] !== 'u') this.fail('lone leading surrogate in a \\u escape', this.i - 6);
    const low = this.readHex4(this.i + 2);
    if (low < 0xdc00 || low > 0xdfff) this.fail('lone leading surrogate in a \\u escape', this.i - 6);
    this.i += 6;
    return String.fromCharCode(unit, low);
  }

  private readHex4(at: number): number {
    const hex = this.text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape', at - 2);
    return parseInt(hex, 16);
  }

  private skipSpace(): void {
    const { text, n } = this;
    while (this.i < n) {
      const c = text.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else break;
    }
  }

  private fail(what: string, at = this.i): never {
    throw new StrictJsonError(at >= this.n ? `${what} at the end of the text` : `${what} at character ${at + 1}`, at);
  }
}
