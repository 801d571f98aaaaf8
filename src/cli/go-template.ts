// docker's `--format` templates, the part of Go's text/template scripts use: actions
// `{{.Field.Path}}` (on objects and maps), `{{json .X}}`, `{{index .X "key" 0}}`,
// `{{upper .X}}`, `{{lower .X}}`, `{{join .X ","}}`, parenthesized sub-expressions
// followed by a field path (`{{(index .X "k").Y}}`), and `\t` / `\n` in the text
// (as docker's formatter replaces them). Anything else (range, if, variables) is
// refused with a message, never printed wrongly.

type Value = unknown;

const FUNCS: Record<string, (...args: Value[]) => Value> = {
  json: (v) => JSON.stringify(v ?? null),
  index: (v, ...keys) => keys.reduce<Value>((acc, k) => (acc == null ? undefined : (acc as Record<string, Value>)[String(k)]), v),
  upper: (v) => String(v).toUpperCase(),
  lower: (v) => String(v).toLowerCase(),
  join: (v, sep) => (Array.isArray(v) ? v.map(goString).join(String(sep)) : goString(v)),
};

/** How Go's fmt prints a value: maps as map[k:v], lists as [a b], nothing as <no value>. */
function goString(v: Value): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).sort();
    return `map[${keys.map((k) => `${k}:${goString((v as Record<string, Value>)[k])}`).join(' ')}]`;
  }
  return String(v);
}

type Token = { kind: 'field'; path: string[] } | { kind: 'string'; value: string } | { kind: 'number'; value: number } | { kind: 'ident'; name: string } | { kind: 'open' } | { kind: 'close' };

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(\.[A-Za-z0-9_.]*)|"((?:[^"\\]|\\.)*)"|(-?\d+)|([A-Za-z_][A-Za-z0-9_]*)|(\()|(\)))/y;
  let pos = 0;
  while (pos < expr.length) {
    if (/^\s*$/.test(expr.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(expr);
    if (!m) throw new Error(`template: cannot parse "${expr.trim()}" at "${expr.slice(pos).trim()}"`);
    pos = re.lastIndex;
    if (m[1] !== undefined) tokens.push({ kind: 'field', path: m[1].split('.').filter(Boolean) });
    else if (m[2] !== undefined) tokens.push({ kind: 'string', value: JSON.parse(`"${m[2]}"`) as string });
    else if (m[3] !== undefined) tokens.push({ kind: 'number', value: Number(m[3]) });
    else if (m[4] !== undefined) tokens.push({ kind: 'ident', name: m[4] });
    else if (m[5] !== undefined) tokens.push({ kind: 'open' });
    else tokens.push({ kind: 'close' });
  }
  return tokens;
}

function field(v: Value, path: string[]): Value {
  return path.reduce<Value>((acc, key) => (acc == null || typeof acc !== 'object' ? undefined : (acc as Record<string, Value>)[key]), v);
}

/** Evaluates one command (a function call or a single operand) from `tokens`, starting at `i`. */
function evaluate(tokens: Token[], dot: Value): Value {
  let i = 0;
  const operand = (): Value => {
    const t = tokens[i++];
    if (!t) throw new Error('template: missing value');
    switch (t.kind) {
      case 'field':
        return field(dot, t.path);
      case 'string':
      case 'number':
        return t.value;
      case 'open': {
        let depth = 1;
        const start = i;
        while (i < tokens.length && depth > 0) {
          const k = tokens[i++]!.kind;
          if (k === 'open') depth++;
          if (k === 'close') depth--;
        }
        if (depth > 0) throw new Error('template: unclosed (');
        let value = evaluate(tokens.slice(start, i - 1), dot);
        // `(expr).Field`: the tokenizer reads `.Field` as a field of dot; apply it to the value instead.
        while (tokens[i]?.kind === 'field') value = field(value, (tokens[i++] as { path: string[] }).path);
        return value;
      }
      default:
        throw new Error(`template: unexpected ${t.kind === 'ident' ? t.name : t.kind}`);
    }
  };
  const first = tokens[0];
  if (first?.kind === 'ident') {
    const fn = FUNCS[first.name];
    if (!fn) throw new Error(`template: "${first.name}" is not supported (use field paths, json, index, upper, lower, join)`);
    i = 1;
    const args: Value[] = [];
    while (i < tokens.length) args.push(operand());
    return fn(...args);
  }
  const value = operand();
  if (i < tokens.length) throw new Error('template: one value expected per action');
  return value;
}

/** Renders `template` with `dot` as Go's text/template would for these constructs. */
export function renderTemplate(template: string, dot: Value): string {
  const text = template.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return text.replace(/\{\{-?\s*(.*?)\s*-?\}\}/g, (_, expr: string) => goString(evaluate(tokenize(expr), dot)));
}
