// Docker's variable substitution ("Environment replacement" in the Dockerfile
// reference), a port of BuildKit's shell lexer (frontend/dockerfile/shell/lex.go): the
// builder applies it to the arguments of ADD, COPY, ENV, EXPOSE, FROM, LABEL,
// STOPSIGNAL, USER, VOLUME, WORKDIR and ARG defaults, never to RUN, CMD or ENTRYPOINT
// (their shell does it, or nothing does in exec form).
//
//   $x  ${x}          the value, or '' when unset
//   ${x:-word}        word when x is unset or empty      ${x-word}  when unset
//   ${x:+word}        word when x is set and not empty   ${x+word}  when set
//   ${x:?msg}         an error when unset or empty       ${x?msg}   when unset
//   'single'          literal; "double" expands $; the escape character (\ or `)
//                     makes the next character literal
//
// Quotes are removed, as the shell would.

export class SubstitutionError extends Error {}

export type Env = ReadonlyMap<string, string>;

const SPECIAL_PARAMS = '@*#?-$!0';

class Lexer {
  private pos = 0;

  constructor(
    private readonly input: string,
    private readonly env: Env,
    private readonly escape: string,
  ) {}

  private peek(): string | undefined {
    return this.input[this.pos];
  }

  private next(): string | undefined {
    return this.input[this.pos++];
  }

  /** Reads until `stop` (consumed) or the end of the input. */
  run(stop?: string): string {
    let out = '';
    for (let ch = this.peek(); ch !== undefined; ch = this.peek()) {
      if (stop !== undefined && ch === stop) {
        this.next();
        return out;
      }
      if (ch === "'") out += this.singleQuoted();
      else if (ch === '"') out += this.doubleQuoted();
      else if (ch === '$') out += this.dollar();
      else {
        this.next();
        if (ch === this.escape) {
          const escaped = this.next();
          if (escaped === undefined) break; // an escape at the very end is dropped
          out += escaped;
        } else {
          out += ch;
        }
      }
    }
    if (stop !== undefined) throw new SubstitutionError(`unexpected end of statement while looking for matching ${stop}`);
    return out;
  }

  private singleQuoted(): string {
    this.next();
    let out = '';
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new SubstitutionError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return out;
      out += ch;
    }
  }

  private doubleQuoted(): string {
    this.next();
    let out = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) throw new SubstitutionError('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.next();
        return out;
      }
      if (ch === '$') {
        out += this.dollar();
        continue;
      }
      this.next();
      if (ch === this.escape) {
        // Inside double quotes only ", $ and the escape character itself can be escaped; other escapes stay as written.
        const following = this.peek();
        if (following === undefined) continue;
        if (following === '"' || following === '$' || following === this.escape) {
          out += this.next();
          continue;
        }
      }
      out += ch;
    }
  }

  private name(): string {
    let out = '';
    const first = this.peek();
    if (first !== undefined && /[0-9]/.test(first)) {
      while (this.peek() !== undefined && /[0-9]/.test(this.peek()!)) out += this.next();
      return out;
    }
    if (first !== undefined && SPECIAL_PARAMS.includes(first)) return this.next()!;
    while (this.peek() !== undefined && /[\p{L}\p{N}_]/u.test(this.peek()!)) out += this.next();
    return out;
  }

  private dollar(): string {
    this.next();
    if (this.peek() !== '{') {
      const name = this.name();
      return name === '' ? '$' : (this.env.get(name) ?? '');
    }
    this.next();
    const first = this.peek();
    if (first === undefined) throw new SubstitutionError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new SubstitutionError('syntax error: bad substitution');
    const name = this.name();
    const value = this.env.get(name);
    const set = value !== undefined;
    const op = this.next();
    switch (op) {
      case '}':
        return value ?? '';
      case '-': {
        const word = this.run('}');
        return set ? value : word;
      }
      case '+': {
        const word = this.run('}');
        return set ? word : '';
      }
      case '?': {
        const word = this.run('}');
        if (!set) throw new SubstitutionError(`${name}: ${word || 'is not allowed to be unset'}`);
        return value;
      }
      case ':': {
        const modifier = this.next();
        const word = this.run('}');
        switch (modifier) {
          case '-':
            return value ? value : word;
          case '+':
            return value ? word : '';
          case '?':
            if (!value) throw new SubstitutionError(`${name}: ${word || (set ? 'is not allowed to be empty' : 'is not allowed to be unset')}`);
            return value;
          default:
            throw new SubstitutionError(`unsupported modifier (${modifier ?? 'end of input'}) in substitution`);
        }
      }
      case undefined:
        throw new SubstitutionError("syntax error: missing '}'");
      default:
        throw new SubstitutionError(`unsupported modifier (${op}) in substitution`);
    }
  }
}

/** Expands one word (quotes removed, variables substituted) as the builder does. */
export function expandWord(word: string, env: Env, escape = '\\'): string {
  return new Lexer(word, env, escape).run();
}
