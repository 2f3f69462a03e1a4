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
  let i = 0;
  const n = text.length;
  const fail = (what: string, at = i): never => {
    throw new StrictJsonError(at >= n ? `${what} at the end of the text` : `${what} at character ${at + 1}`, at);
  };
  const skipSpace = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const readString = (): string => {
    // text[i] is the opening quote.
    i++;
    let out = '';
    let start = i;
    while (true) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in a string (it must be escaped)');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const unit = readHex4(i);
          i += 4;
          if (unit >= 0xdc00 && unit <= 0xdfff) fail('lone trailing surrogate in a \\u escape', i - 6);
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (text[i] !== '\\' || text[i + 1] !== 'u') fail('lone leading surrogate in a \\u escape', i - 6);
            const low = readHex4(i + 2);
            if (low < 0xdc00 || low > 0xdfff) fail('lone leading surrogate in a \\u escape', i - 6);
            i += 6;
            out += String.fromCharCode(unit, low);
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          fail('invalid escape in a string', i - 2);
      }
      start = i;
    }
  };
  const readHex4 = (at: number): number => {
    const hex = text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('invalid \\u escape', at - 2);
    return parseInt(hex, 16);
  };

  const stack: Open[] = [];
  let root: StrictJsonValue | undefined;
  let done = false;
  /** Puts a finished value into the open container (or makes it the root). */
  const place = (value: StrictJsonValue) => {
    const top = stack[stack.length - 1];
    if (!top) {
      root = value;
      done = true;
    } else if (Array.isArray(top.container)) {
      top.container.push(value);
    } else {
      top.container.entries.push([top.key!, value]);
      top.key = null;
    }
  };

  skipSpace();
  // State: expecting a value here (after [, :, or a comma), else expecting , or a closer.
  let expectValue = true;
  while (!done) {
    skipSpace();
    if (i >= n) fail('unexpected end of the text');
    const top = stack[stack.length - 1];
    const c = text[i];
    if (expectValue) {
      // In an object, a value slot is first a key.
      if (top && !Array.isArray(top.container) && top.key === null) {
        if (c !== '"') fail('expected a string key');
        const key = readString();
        skipSpace();
        if (text[i] !== ':') fail("expected ':' after a key");
        i++;
        top.key = key;
        continue;
      }
      if (c === '{' || c === '[') {
        if (stack.length >= MAX_JSON_DEPTH) fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
        i++;
        const container = c === '{' ? new JsonObject() : [];
        stack.push({ container, key: null });
        skipSpace();
        const closer = c === '{' ? '}' : ']';
        if (text[i] === closer) {
          i++;
          stack.pop();
          place(container);
          expectValue = false;
        }
        continue;
      }
      if (c === '"') place(readString());
      else if (text.startsWith('true', i)) (i += 4), place(true);
      else if (text.startsWith('false', i)) (i += 5), place(false);
      else if (text.startsWith('null', i)) (i += 4), place(null);
      else {
        NUMBER.lastIndex = i;
        const match = NUMBER.exec(text);
        if (!match) fail(`unexpected character ${JSON.stringify(c)}`);
        i += match![0].length;
        place(new JsonNumber(match![0]));
      }
      expectValue = false;
      continue;
    }
    // After a value inside a container.
    const closer = Array.isArray(top!.container) ? ']' : '}';
    if (c === ',') {
      i++;
      expectValue = true;
      continue;
    }
    if (c === closer) {
      i++;
      stack.pop();
      place(top!.container);
      continue;
    }
    fail(`expected ',' or '${closer}'`);
  }
  skipSpace();
  if (i < n) fail('trailing characters after the JSON value');
  return root!;
}
