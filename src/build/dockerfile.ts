// The Dockerfile parser: text in, instructions out, nothing else (no file system, no
// substitution: the builder expands variables where docker does, see shell-words.ts).
// It follows BuildKit's parser (frontend/dockerfile/parser), which is also what the
// classic builder reads:
//
// - Parser directives (`# syntax=...`, `# escape=...`) only at the very top, before
//   any comment, blank line or instruction; `escape` is \ (default) or `.
// - A line ending with the escape character (spaces after it allowed) continues on the
//   next; comment lines and empty lines inside a continuation are dropped.
// - Lines whose first non-blank character is # are comments; # elsewhere is text.
// - Keywords are case-insensitive; `--flag=value` words right after the keyword are
//   flags; arguments are JSON arrays (exec form) or plain text (shell form) per keyword.
//
// Instructions or flags berth does not implement (RUN --mount, heredocs, COPY --link...)
// are errors naming the line, never ignored.

export class DockerfileError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `Dockerfile line ${line}: ${message}`);
  }
}

/** RUN, CMD and ENTRYPOINT in exec form (a JSON array) or shell form (text for the shell). */
export type CommandForm = { form: 'exec'; argv: string[] } | { form: 'shell'; text: string };

export interface KeyValue {
  key: string;
  value: string;
}

interface Base {
  /** First line of the instruction (1-based). */
  line: number;
  /** The instruction as written, continuations joined. */
  original: string;
  flags: Record<string, string>;
}

export type Instruction = Base &
  (
    | { keyword: 'FROM'; image: string; stageName?: string }
    | { keyword: 'RUN'; command: CommandForm }
    | { keyword: 'CMD' | 'ENTRYPOINT'; command: CommandForm }
    | { keyword: 'SHELL'; argv: string[] }
    | { keyword: 'ENV' | 'LABEL'; pairs: KeyValue[] }
    | { keyword: 'ARG'; args: { name: string; value?: string }[] }
    | { keyword: 'COPY' | 'ADD'; sources: string[]; dest: string }
    | { keyword: 'WORKDIR' | 'USER' | 'STOPSIGNAL' | 'MAINTAINER'; value: string }
    | { keyword: 'EXPOSE' | 'VOLUME'; values: string[] }
    | { keyword: 'HEALTHCHECK'; test: CommandForm | 'NONE' }
    | { keyword: 'ONBUILD'; trigger: Instruction; expression: string }
  );

export type Keyword = Instruction['keyword'];

export interface Stage {
  /** Position among the stages (0-based). */
  index: number;
  /** `AS name`, lower-cased as docker compares it. */
  name?: string;
  from: Instruction & { keyword: 'FROM' };
  /** The instructions after FROM. */
  instructions: Instruction[];
}

export interface Dockerfile {
  directives: { syntax?: string; escape: string };
  /** ARGs before the first FROM: usable in FROM lines, and by stages that redeclare them. */
  metaArgs: (Instruction & { keyword: 'ARG' })[];
  stages: Stage[];
}

/** The flags each keyword takes in berth; BuildKit-only ones get their own message. */
const FLAGS: Partial<Record<Keyword, string[]>> = {
  FROM: ['platform'],
  COPY: ['from', 'chown', 'chmod'],
  ADD: ['chown', 'chmod'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};
const BUILDKIT_FLAGS: Partial<Record<Keyword, string[]>> = {
  RUN: ['mount', 'network', 'security'],
  COPY: ['link', 'parents', 'exclude'],
  ADD: ['link', 'checksum', 'keep-git-dir', 'exclude'],
};

const KEYWORDS = new Set<string>([
  'FROM', 'RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'ENV', 'LABEL', 'ARG', 'COPY', 'ADD', 'WORKDIR', 'USER',
  'STOPSIGNAL', 'MAINTAINER', 'EXPOSE', 'VOLUME', 'HEALTHCHECK', 'ONBUILD',
]);

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const COMMENT = /^\s*#/;
const HEREDOC = /<<-?\s*["']?[A-Za-z_][A-Za-z0-9_]*["']?/;
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

/** One logical line: the joined text and the line it started on. */
interface LogicalLine {
  text: string;
  line: number;
}

function splitLines(source: string, directives: Dockerfile['directives']): LogicalLine[] {
  const raw = source.replace(/^\uFEFF/, '').split(/\r?\n/);
  const out: LogicalLine[] = [];
  let lookingForDirectives = true;
  const seen = new Set<string>();
  const esc = () => directives.escape.replace(/[\\`]/g, '\\$&');
  const continuation = () => new RegExp(`${esc()}[ \\t]*$`);
  for (let i = 0; i < raw.length; i++) {
    let text = raw[i]!;
    if (lookingForDirectives) {
      const m = DIRECTIVE.exec(text);
      const name = m?.[1]!.toLowerCase();
      if (m && (name === 'syntax' || name === 'escape' || name === 'check')) {
        if (seen.has(name)) throw new DockerfileError(`only one ${name} parser directive can be used`, i + 1);
        seen.add(name);
        if (name === 'escape') {
          if (m[2] !== '\\' && m[2] !== '`') throw new DockerfileError(`invalid escape token '${m[2]}' does not match \` or \\`, i + 1);
          directives.escape = m[2];
        } else if (name === 'syntax') {
          directives.syntax = m[2];
        }
        continue;
      }
      lookingForDirectives = false;
    }
    text = text.trimStart();
    if (text === '' || COMMENT.test(text)) continue;
    const start = i + 1;
    let ended = !continuation().test(text);
    text = text.replace(continuation(), '');
    while (!ended && i + 1 < raw.length) {
      const next = raw[++i]!;
      if (COMMENT.test(next) || next.trim() === '') continue; // dropped, as docker does
      ended = !continuation().test(next);
      text += next.replace(continuation(), '');
    }
    if (text.trim() !== '') out.push({ text, line: start });
  }
  return out;
}

/**
 * Splits on blanks keeping quoted parts (with their quotes and escapes) together:
 * BuildKit's parseWords, used for ENV, LABEL and ARG.
 */
export function splitWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote = '';
  let blankOk = false;
  for (let i = 0; i < rest.length; i++) {
    let ch = rest[i]!;
    if (!inWord && !quote) {
      if (/\s/.test(ch)) continue;
      inWord = true;
    }
    if (quote) {
      if (ch === quote) quote = '';
      else if (ch === escape && quote !== "'") {
        if (i + 1 === rest.length) continue;
        word += ch;
        ch = rest[++i]!;
      }
      word += ch;
      continue;
    }
    if (/\s/.test(ch)) {
      if (blankOk || word.length > 0) words.push(word);
      word = '';
      blankOk = false;
      inWord = false;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      blankOk = true;
    }
    if (ch === escape) {
      if (i + 1 === rest.length) continue;
      word += ch;
      ch = rest[++i]!;
    }
    word += ch;
  }
  if ((inWord || quote) && (blankOk || word.length > 0)) words.push(word);
  return words;
}

/** Leading `--name=value` words (BuildKit's extractBuilderFlags); `--` ends them. */
function extractFlags(rest: string, line: number): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let remaining = rest.trimStart();
  while (remaining.startsWith('--')) {
    const m = /^(\S+)(\s+|$)/.exec(remaining)!;
    remaining = remaining.slice(m[0].length);
    if (m[1] === '--') break;
    const word = m[1]!.slice(2);
    const eq = word.indexOf('=');
    const name = (eq < 0 ? word : word.slice(0, eq)).toLowerCase();
    if (name in flags) throw new DockerfileError(`duplicate flag specified: --${name}`, line);
    flags[name] = eq < 0 ? '' : word.slice(eq + 1).replace(/^"(.*)"$/, '$1');
  }
  return { flags, rest: remaining };
}

/** A JSON array of strings, or undefined when the text is not one (docker then uses the shell form). */
function jsonArray(rest: string): string[] | undefined {
  const text = rest.trim();
  if (!text.startsWith('[') || !text.endsWith(']')) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) return parsed;
  } catch {
    // not JSON: shell form
  }
  return undefined;
}

function commandForm(rest: string): CommandForm {
  const argv = jsonArray(rest);
  return argv ? { form: 'exec', argv } : { form: 'shell', text: rest.trim() };
}

function whitespaceList(rest: string): string[] {
  const trimmed = rest.trim();
  return trimmed === '' ? [] : trimmed.split(/\s+/);
}

/** ENV and LABEL: `key value` (old form, one pair) or `k=v k2="v 2"`. */
function keyValues(keyword: string, rest: string, escape: string, line: number): KeyValue[] {
  const words = splitWords(rest, escape);
  if (words.length === 0) throw new DockerfileError(`${keyword} must have some arguments`, line);
  if (!words[0]!.includes('=')) {
    const m = /^\s*(\S+)\s+([\s\S]*\S)\s*$/.exec(rest);
    if (!m) throw new DockerfileError(`${keyword} must have two arguments`, line);
    return [{ key: m[1]!, value: m[2]! }];
  }
  return words.map((word) => {
    const eq = word.indexOf('=');
    if (eq < 0) throw new DockerfileError(`Syntax error - can't find = in "${word}". Must be of the form: name=value`, line);
    if (eq === 0) throw new DockerfileError(`${keyword} names can not be blank`, line);
    return { key: word.slice(0, eq), value: word.slice(eq + 1) };
  });
}

function checkFlags(keyword: Keyword, flags: Record<string, string>, line: number): void {
  for (const name of Object.keys(flags)) {
    if (BUILDKIT_FLAGS[keyword]?.includes(name)) {
      throw new DockerfileError(`${keyword} --${name} is a BuildKit feature berth build does not support`, line);
    }
    if (!FLAGS[keyword]?.includes(name)) throw new DockerfileError(`unknown flag: --${name} (${keyword} takes ${FLAGS[keyword]?.map((f) => `--${f}`).join(', ') || 'no flags'})`, line);
  }
}

function parseInstruction(text: string, line: number, escape: string): Instruction {
  const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(text)!;
  const keyword = m[1]!.toUpperCase();
  if (!KEYWORDS.has(keyword)) throw new DockerfileError(`unknown instruction: ${m[1]}`, line);
  const { flags, rest } = keyword === 'ONBUILD' ? { flags: {}, rest: m[2]! } : extractFlags(m[2]!, line);
  checkFlags(keyword as Keyword, flags, line);
  const base = { line, original: text.trim(), flags };
  if ((keyword === 'RUN' || keyword === 'COPY' || keyword === 'ADD') && !jsonArray(rest) && HEREDOC.test(rest)) {
    throw new DockerfileError(`heredocs (${HEREDOC.exec(rest)![0]}) are not supported by berth build`, line);
  }
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new DockerfileError(`${keyword} ${what}`, line);
  };
  switch (keyword) {
    case 'FROM': {
      const words = whitespaceList(rest);
      need(words.length === 1 || (words.length === 3 && words[1]!.toLowerCase() === 'as'), 'requires either one or three arguments (FROM image [AS name])');
      const stageName = words[2]?.toLowerCase();
      if (stageName !== undefined && !STAGE_NAME.test(stageName)) {
        throw new DockerfileError(`invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`, line);
      }
      return { ...base, keyword, image: words[0]!, stageName };
    }
    case 'RUN':
    case 'CMD':
    case 'ENTRYPOINT': {
      const command = commandForm(rest);
      if (keyword === 'RUN') need(command.form === 'exec' ? command.argv.length > 0 : command.text !== '', 'requires at least one argument');
      return { ...base, keyword, command };
    }
    case 'SHELL': {
      const argv = jsonArray(rest);
      need(argv !== undefined && argv.length > 0, 'requires the arguments to be in JSON form, e.g. SHELL ["/bin/bash", "-c"]');
      return { ...base, keyword, argv: argv! };
    }
    case 'ENV':
    case 'LABEL':
      return { ...base, keyword, pairs: keyValues(keyword, rest, escape, line) };
    case 'ARG': {
      const words = splitWords(rest, escape);
      need(words.length > 0, 'requires at least one argument');
      return {
        ...base,
        keyword,
        args: words.map((w) => {
          const eq = w.indexOf('=');
          const name = eq < 0 ? w : w.slice(0, eq);
          if (name === '') throw new DockerfileError('ARG names can not be blank', line);
          return eq < 0 ? { name } : { name, value: w.slice(eq + 1) };
        }),
      };
    }
    case 'COPY':
    case 'ADD': {
      const words = jsonArray(rest) ?? whitespaceList(rest);
      need(words.length >= 2, 'requires at least two arguments, but got ' + words.length);
      return { ...base, keyword, sources: words.slice(0, -1), dest: words[words.length - 1]! };
    }
    case 'WORKDIR':
    case 'USER':
    case 'STOPSIGNAL':
    case 'MAINTAINER':
      need(rest.trim() !== '', 'requires exactly one argument');
      if (keyword === 'STOPSIGNAL' || keyword === 'USER') need(whitespaceList(rest).length === 1, 'requires exactly one argument');
      return { ...base, keyword, value: rest.trim() };
    case 'EXPOSE':
    case 'VOLUME': {
      const values = keyword === 'VOLUME' ? (jsonArray(rest) ?? whitespaceList(rest)) : whitespaceList(rest);
      need(values.length > 0, 'requires at least one argument');
      return { ...base, keyword, values };
    }
    case 'HEALTHCHECK': {
      const mm = /^(\S+)\s*([\s\S]*)$/.exec(rest.trim());
      const kind = mm?.[1]!.toUpperCase();
      if (kind === 'NONE') {
        need(mm![2] === '' && Object.keys(flags).length === 0, 'NONE takes no arguments or flags');
        return { ...base, keyword, test: 'NONE' };
      }
      need(kind === 'CMD' && mm![2] !== '', 'requires CMD followed by a command, or NONE');
      return { ...base, keyword, test: commandForm(mm![2]!) };
    }
    case 'ONBUILD': {
      const expression = rest.trim();
      need(expression !== '', 'requires at least one argument');
      const trigger = parseInstruction(expression, line, escape);
      if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(trigger.keyword)) {
        throw new DockerfileError(`${trigger.keyword} isn't allowed as an ONBUILD trigger`, line);
      }
      return { ...base, keyword, trigger, expression };
    }
  }
  throw new DockerfileError(`unknown instruction: ${m[1]}`, line);
}

/** Parses one instruction on its own (ONBUILD triggers of a base image, `commit --change`). */
export function parseLine(text: string, escape = '\\'): Instruction {
  return parseInstruction(text, 1, escape);
}

export function parseDockerfile(source: string): Dockerfile {
  const directives: Dockerfile['directives'] = { escape: '\\' };
  const lines = splitLines(source, directives);
  const metaArgs: Dockerfile['metaArgs'] = [];
  const stages: Stage[] = [];
  for (const { text, line } of lines) {
    const instr = parseInstruction(text, line, directives.escape);
    if (instr.keyword === 'FROM') {
      if (instr.stageName && stages.some((s) => s.name === instr.stageName)) {
        throw new DockerfileError(`duplicate name ${instr.stageName}`, line);
      }
      stages.push({ index: stages.length, name: instr.stageName, from: instr, instructions: [] });
    } else if (stages.length === 0) {
      if (instr.keyword !== 'ARG') throw new DockerfileError(`no build stage in current context: ${instr.keyword} before FROM (only ARG may come first)`, line);
      metaArgs.push(instr);
    } else {
      stages[stages.length - 1]!.instructions.push(instr);
    }
  }
  if (stages.length === 0) throw new DockerfileError('the Dockerfile has no FROM instruction');
  return { directives, metaArgs, stages };
}
