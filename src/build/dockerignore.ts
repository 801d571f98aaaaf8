// `.dockerignore`, with docker's rules (moby/patternmatcher and its ignorefile reader):
// one pattern a line, `#` comments, patterns cleaned and made relative to the context
// (`/foo` and `./foo` are `foo`); `*` and `?` stay within a path component, `**`
// matches any number of them; `!pattern` re-includes. The last pattern that matches a
// path (or one of its parent directories) decides.

export interface IgnorePattern {
  exclusion: boolean;
  pattern: string;
  regexp: RegExp;
}

function clean(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else out.push(part);
  }
  return out.join('/') || '.';
}

/** Docker's pattern -> regular expression. */
function compile(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') i++;
        re += i + 1 >= pattern.length ? '.*' : '(.*/)?';
      } else {
        re += '[^/]*';
      }
    } else if (ch === '?') {
      re += '[^/]';
    } else if (ch === '\\') {
      i++;
      if (i < pattern.length) re += pattern[i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else if ('.$^+(){}|/'.includes(ch)) {
      re += `\\${ch}`;
    } else {
      re += ch; // [ ] character classes pass through, as in Go's filepath.Match
    }
  }
  try {
    return new RegExp(`${re}$`);
  } catch {
    throw new Error(`.dockerignore: invalid pattern ${pattern}`);
  }
}

export function parseDockerignore(text: string): IgnorePattern[] {
  const out: IgnorePattern[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let pattern = raw.trim();
    if (pattern === '' || pattern.startsWith('#')) continue;
    const exclusion = pattern.startsWith('!');
    if (exclusion) pattern = pattern.slice(1).trim();
    if (pattern === '') continue;
    pattern = clean(pattern);
    out.push({ exclusion, pattern, regexp: compile(pattern) });
  }
  return out;
}

/** True when `path` (relative to the context, `/`-separated) is excluded by the patterns. */
export function isIgnored(patterns: IgnorePattern[], path: string): boolean {
  const file = clean(path);
  const parents = file.split('/').slice(0, -1);
  let matched = false;
  for (const p of patterns) {
    // An inclusion cannot change an already excluded path, nor an exclusion a kept one.
    if (p.exclusion !== matched) continue;
    let match = p.regexp.test(file);
    for (let i = 1; !match && i <= parents.length; i++) match = p.regexp.test(parents.slice(0, i).join('/'));
    if (match) matched = !p.exclusion;
  }
  return matched;
}

/** Whether some `!` pattern could re-include something below an excluded directory. */
export function hasExceptions(patterns: IgnorePattern[]): boolean {
  return patterns.some((p) => p.exclusion);
}
