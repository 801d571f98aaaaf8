// The Dockerfile parser, variable substitution, the metadata rules and .dockerignore,
// each case checked against what docker's Dockerfile reference documents (quoted where
// the reference gives the example).

import { describe, expect, it } from 'vitest';
import { DockerfileError, parseDockerfile, parseLine, splitWords, type Instruction } from '../src/build/dockerfile.js';
import { isIgnored, parseDockerignore } from '../src/build/dockerignore.js';
import { exposedPorts, parseDuration, resolveWorkdir, StageState, type ContainerConfig } from '../src/build/image-config.js';
import { expandWord } from '../src/build/shell-words.js';

const only = (src: string): Instruction[] => parseDockerfile(src).stages[0]!.instructions;
const failsAt = (src: string, line: number, message: RegExp) => {
  let err: unknown;
  try {
    parseDockerfile(src);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DockerfileError);
  expect((err as DockerfileError).line).toBe(line);
  expect((err as Error).message).toMatch(message);
  expect((err as Error).message).toContain(`line ${line}`);
};

function stage(config: ContainerConfig = {}, buildArgs: Record<string, string> = {}, meta: Record<string, string | undefined> = {}) {
  return new StageState(config, new Map(Object.entries(buildArgs)), new Map(Object.entries(meta)), new Set());
}
const apply = (s: StageState, line: string) => s.apply(parseLine(line));

describe('parser directives', () => {
  it('reads # syntax and # escape at the top, in any spacing', () => {
    const df = parseDockerfile('# syntax=docker/dockerfile:1\n#escape = `\nFROM scratch\n');
    expect(df.directives).toEqual({ syntax: 'docker/dockerfile:1', escape: '`' });
  });

  it('ignores directives after a comment, a blank line or an instruction (docs: "treated as a comment")', () => {
    expect(parseDockerfile('# about my dockerfile\n# escape=`\nFROM scratch').directives.escape).toBe('\\');
    expect(parseDockerfile('\n# escape=`\nFROM scratch').directives.escape).toBe('\\');
    expect(parseDockerfile('FROM scratch\n# escape=`').directives.escape).toBe('\\');
    // an unknown directive is a comment, and ends the directives
    expect(parseDockerfile('# unknowndirective=value\n# escape=`\nFROM scratch').directives.escape).toBe('\\');
  });

  it('refuses a repeated directive and an invalid escape', () => {
    failsAt('# escape=\\\n# escape=`\nFROM scratch', 2, /only one escape parser directive/);
    failsAt('# escape=x\nFROM scratch', 1, /invalid escape token/);
  });

  it('honours the escape character for continuations (docs: the Windows example with `)', () => {
    const [copy, run] = only('# escape=`\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n  /b\n');
    expect(copy).toMatchObject({ keyword: 'COPY', sources: ['testfile.txt'], dest: 'c:\\' });
    expect(run).toMatchObject({ keyword: 'RUN', command: { form: 'shell', text: 'dir c:\\   /b' } });
  });
});

describe('lines, comments and continuations', () => {
  it('joins continued lines without adding anything, keeping the next line\'s indentation', () => {
    const [run] = only('FROM scratch\nRUN echo hello \\\n    world\n');
    expect(run).toMatchObject({ command: { form: 'shell', text: 'echo hello     world' }, line: 2 });
  });

  it('allows blanks after the continuation character', () => {
    expect(only('FROM scratch\nRUN a \\   \nb')[0]).toMatchObject({ command: { text: 'a b' } });
  });

  it('drops comment lines and empty lines inside a continuation (docs example)', () => {
    const [run] = only('FROM scratch\nRUN echo hello \\\n# comment\nworld\n\nRUN x \\\n\n  y');
    expect(run).toMatchObject({ command: { text: 'echo hello world' } });
    expect(only('FROM scratch\nRUN x \\\n\n  y')[0]).toMatchObject({ command: { text: 'x   y' } });
  });

  it('treats # as a comment only at the start of a line; leading whitespace is allowed', () => {
    const [run] = only('FROM x\n        # this is a comment-line\n    RUN echo hello\nRUN echo world # not a comment');
    expect(run).toMatchObject({ command: { text: 'echo hello' } });
    expect(only('FROM x\nRUN echo world # not a comment')[0]).toMatchObject({ command: { text: 'echo world # not a comment' } });
  });

  it('reads keywords case-insensitively and records the first line of each', () => {
    const df = parseDockerfile('from busybox as Builder\n\nrun true\n');
    expect(df.stages[0]).toMatchObject({ name: 'builder', from: { image: 'busybox' } });
    expect(df.stages[0]!.instructions[0]).toMatchObject({ keyword: 'RUN', line: 3 });
  });

  it('handles CRLF line ends and a byte order mark', () => {
    expect(only('\uFEFFFROM scratch\r\nCMD ["/a"]\r\n')[0]).toMatchObject({ command: { form: 'exec', argv: ['/a'] } });
  });
});

describe('shell and exec forms', () => {
  it('JSON arrays are exec form; anything else, invalid JSON included, is shell form', () => {
    expect(only('FROM x\nRUN ["echo", "$HOME"]')[0]).toMatchObject({ command: { form: 'exec', argv: ['echo', '$HOME'] } });
    expect(only("FROM x\nCMD ['echo', 'hi']")[0]).toMatchObject({ command: { form: 'shell', text: "['echo', 'hi']" } });
    expect(only('FROM x\nENTRYPOINT [ "a", 1 ]')[0]).toMatchObject({ command: { form: 'shell' } });
  });

  it('SHELL must be JSON', () => {
    failsAt('FROM x\nSHELL /bin/bash -c', 2, /JSON form/);
    expect(only('FROM x\nSHELL ["/bin/bash", "-c"]')[0]).toMatchObject({ argv: ['/bin/bash', '-c'] });
  });

  it('turns shell form into [shell..., text] with SHELL, exec form as written', () => {
    const s = stage();
    apply(s, 'CMD echo $HOME');
    expect(s.config.Cmd).toEqual(['/bin/sh', '-c', 'echo $HOME']);
    apply(s, 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]');
    apply(s, 'ENTRYPOINT exec top -b');
    expect(s.config.Entrypoint).toEqual(['/bin/bash', '-o', 'pipefail', '-c', 'exec top -b']);
    apply(s, 'CMD ["--help"]');
    expect(s.config.Cmd).toEqual(['--help']);
  });
});

describe('CMD and ENTRYPOINT', () => {
  it('a later CMD replaces an earlier one', () => {
    const s = stage();
    apply(s, 'CMD ["a"]');
    apply(s, 'CMD ["b"]');
    expect(s.config.Cmd).toEqual(['b']);
  });

  it('ENTRYPOINT resets a CMD inherited from the base image (docs: "CMD will be reset to an empty value")', () => {
    const s = stage({ Cmd: ['/bin/sh'] });
    apply(s, 'ENTRYPOINT ["/app"]');
    expect(s.config.Cmd).toBeNull();
    expect(s.config.Entrypoint).toEqual(['/app']);
  });

  it('ENTRYPOINT keeps a CMD set earlier in the same stage', () => {
    const s = stage({ Cmd: ['/bin/sh'] });
    apply(s, 'CMD ["-c"]');
    apply(s, 'ENTRYPOINT ["top", "-b"]');
    expect(s.config.Cmd).toEqual(['-c']);
  });
});

describe('ENV, LABEL and ARG', () => {
  it('ENV takes both forms: "ENV key value" (one pair, rest of the line) and key=value pairs', () => {
    const [a, b] = only('FROM x\nENV MY_NAME John Doe\nENV MY_DOG=Rex\\ The\\ Dog MY_CAT="fluffy cat"');
    expect(a).toMatchObject({ pairs: [{ key: 'MY_NAME', value: 'John Doe' }] });
    expect(b).toMatchObject({ pairs: [{ key: 'MY_DOG', value: 'Rex\\ The\\ Dog' }, { key: 'MY_CAT', value: '"fluffy cat"' }] });
    const s = stage();
    s.apply(a!);
    s.apply(b!);
    expect(s.config.Env).toEqual(['MY_NAME=John Doe', 'MY_DOG=Rex The Dog', 'MY_CAT=fluffy cat']);
  });

  it('ENV errors: a word without =, a missing value', () => {
    failsAt('FROM x\nENV a=1 b', 2, /can't find = in "b"/);
    failsAt('FROM x\nENV onlyname', 2, /must have two arguments/);
  });

  it('ENV substitutions in one instruction see the values from before it (docs: def=hello, ghi=bye)', () => {
    const s = stage();
    apply(s, 'ENV abc=hello');
    apply(s, 'ENV abc=bye def=$abc');
    apply(s, 'ENV ghi=$abc');
    expect(s.config.Env).toEqual(['abc=bye', 'def=hello', 'ghi=bye']);
  });

  it('LABEL sets labels, both forms, with substitution', () => {
    const s = stage({ Env: ['V=1.0'] });
    apply(s, 'LABEL "com.example.vendor"="ACME Incorporated" version=$V');
    apply(s, 'LABEL description This text illustrates');
    expect(s.config.Labels).toEqual({ 'com.example.vendor': 'ACME Incorporated', version: '1.0', description: 'This text illustrates' });
  });

  it('ARGs before FROM are global: usable in FROM, and in a stage only when redeclared', () => {
    const df = parseDockerfile('ARG CODE_VERSION=latest\nFROM base:${CODE_VERSION}\nARG CODE_VERSION\nRUN true');
    expect(df.metaArgs[0]).toMatchObject({ args: [{ name: 'CODE_VERSION', value: 'latest' }] });
    expect(df.stages[0]!.from.image).toBe('base:${CODE_VERSION}');
    const s = stage({}, {}, { CODE_VERSION: 'latest' });
    expect(s.env().get('CODE_VERSION')).toBeUndefined();
    s.apply(df.stages[0]!.instructions[0]!);
    expect(s.env().get('CODE_VERSION')).toBe('latest');
  });

  it('only ARG may come before FROM', () => {
    failsAt('ENV a=b\nFROM x', 1, /before FROM/);
  });

  it('--build-arg overrides the default; ENV overrides ARG; RUN gets the ARGs no ENV hides', () => {
    const s = stage({}, { user: 'what_user', CONT_IMG_VER: 'v2.0.1' });
    apply(s, 'ARG user=some_user');
    apply(s, 'ARG CONT_IMG_VER');
    apply(s, 'ARG unset');
    expect(s.env().get('user')).toBe('what_user');
    apply(s, 'ENV CONT_IMG_VER=v1.0.0');
    expect(s.env().get('CONT_IMG_VER')).toBe('v1.0.0');
    expect(s.runArgs()).toEqual(['user=what_user']);
    expect(s.config.Env).toEqual(['CONT_IMG_VER=v1.0.0']);
  });

  it('ARG takes several names, defaults expanded', () => {
    const s = stage({ Env: ['BASE=/opt'] });
    apply(s, 'ARG a=1 b="two words" c=$BASE/bin');
    expect([...s.args]).toEqual([['a', '1'], ['b', 'two words'], ['c', '/opt/bin']]);
  });
});

describe('variable substitution', () => {
  const env = new Map([['foo', '/bar'], ['empty', ''], ['name', 'Docker']]);
  const x = (w: string) => expandWord(w, env);

  it('$x, ${x}, ${x:-default}, ${x:+alt} as the reference describes', () => {
    expect(x('$foo')).toBe('/bar');
    expect(x('${foo}/baz')).toBe('/bar/baz');
    expect(x('${nope:-word}')).toBe('word');
    expect(x('${empty:-word}')).toBe('word');
    expect(x('${foo:-word}')).toBe('/bar');
    expect(x('${foo:+alt}')).toBe('alt');
    expect(x('${nope:+alt}')).toBe('');
    expect(x('${empty:+alt}')).toBe('');
    expect(x('${empty-word}')).toBe('');
    expect(x('${nope:-$foo}')).toBe('/bar');
    expect(x('$nope')).toBe('');
  });

  it('escapes and quotes: \\$foo is literal, single quotes are literal, double quotes expand', () => {
    expect(x('\\$foo')).toBe('$foo');
    expect(x('\\${foo}')).toBe('${foo}');
    expect(x("'$foo'")).toBe('$foo');
    expect(x('"$foo is \\"here\\""')).toBe('/bar is "here"');
    expect(x('"a\\b"')).toBe('a\\b');
    expect(x('hello\\ world')).toBe('hello world');
    expect(x('$')).toBe('$');
    expect(expandWord('`$foo', env, '`')).toBe('$foo');
  });

  it('errors on bad substitutions and unset ${x:?}', () => {
    expect(() => x('${foo')).toThrow(/missing|matching/);
    expect(() => x('${}')).toThrow(/bad substitution/);
    expect(() => x('${foo:x}')).toThrow(/unsupported modifier/);
    expect(() => x('${nope:?must be set}')).toThrow(/nope: must be set/);
  });

  it('applies to WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL; not to RUN, CMD, ENTRYPOINT (their shell does it)', () => {
    const s = stage({ Env: ['DIR=/data', 'U=app', 'P=8080', 'SIG=SIGTERM'] });
    for (const l of ['WORKDIR $DIR', 'USER ${U}:${G:-staff}', 'EXPOSE $P ${P}/udp', 'VOLUME ["$DIR/v"]', 'STOPSIGNAL $SIG', 'CMD echo $DIR', 'ENTRYPOINT ["echo", "$DIR"]']) apply(s, l);
    expect(s.config).toMatchObject({
      WorkingDir: '/data',
      User: 'app:staff',
      ExposedPorts: { '8080/tcp': {}, '8080/udp': {} },
      Volumes: { '/data/v': {} },
      StopSignal: 'SIGTERM',
      Cmd: ['/bin/sh', '-c', 'echo $DIR'],
      Entrypoint: ['echo', '$DIR'],
    });
    const run = parseLine('RUN echo $DIR');
    expect(run).toMatchObject({ command: { form: 'shell', text: 'echo $DIR' } });
  });
});

describe('other instructions', () => {
  it('WORKDIR is relative to the previous one (docs: /a + b + c -> /a/b/c)', () => {
    const s = stage();
    for (const l of ['WORKDIR /a', 'WORKDIR b', 'WORKDIR c']) apply(s, l);
    expect(s.config.WorkingDir).toBe('/a/b/c');
    expect(resolveWorkdir(undefined, 'demo')).toBe('/demo');
    expect(resolveWorkdir('/test', '../x/./y/')).toBe('/x/y');
  });

  it('EXPOSE ports, ranges and protocols', () => {
    expect(exposedPorts('80', 1)).toEqual(['80/tcp']);
    expect(exposedPorts('53/UDP', 1)).toEqual(['53/udp']);
    expect(exposedPorts('8000-8002', 1)).toEqual(['8000/tcp', '8001/tcp', '8002/tcp']);
    expect(() => exposedPorts('http', 7)).toThrow(/line 7: invalid port/);
  });

  it('HEALTHCHECK with options, NONE, and durations', () => {
    const s = stage();
    apply(s, 'HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://localhost/ || exit 1');
    expect(s.config.Healthcheck).toEqual({ Test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'], Interval: 300e9, Timeout: 3e9, Retries: 3 });
    apply(s, 'HEALTHCHECK CMD ["/check"]');
    expect(s.config.Healthcheck).toEqual({ Test: ['CMD', '/check'] });
    apply(s, 'HEALTHCHECK NONE');
    expect(s.config.Healthcheck).toEqual({ Test: ['NONE'] });
    expect(parseDuration('1m30s')).toBe(90e9);
    expect(parseDuration('soon')).toBeUndefined();
  });

  it('ONBUILD records the trigger as written; ONBUILD ONBUILD and ONBUILD FROM are refused', () => {
    const s = stage();
    apply(s, 'ONBUILD ADD . /app/src');
    apply(s, 'ONBUILD RUN /usr/local/bin/python-build --dir /app/src');
    expect(s.config.OnBuild).toEqual(['ADD . /app/src', 'RUN /usr/local/bin/python-build --dir /app/src']);
    failsAt('FROM x\nONBUILD ONBUILD RUN x', 2, /isn't allowed as an ONBUILD trigger/);
    failsAt('FROM x\nONBUILD FROM y', 2, /isn't allowed/);
  });

  it('COPY/ADD: flags, several sources, JSON form for paths with spaces', () => {
    const [a, b] = only('FROM x\nCOPY --chown=55:mygroup --chmod=644 files* /somedir/\nADD ["a b.txt", "/dest dir/"]');
    expect(a).toMatchObject({ flags: { chown: '55:mygroup', chmod: '644' }, sources: ['files*'], dest: '/somedir/' });
    expect(b).toMatchObject({ sources: ['a b.txt'], dest: '/dest dir/' });
    failsAt('FROM x\nCOPY onlyone', 2, /at least two arguments/);
  });

  it('stages: FROM ... AS name, duplicate names refused, names checked', () => {
    const df = parseDockerfile('FROM busybox AS build\nRUN x\nFROM scratch\nCOPY --from=build /a /a');
    expect(df.stages.map((s) => s.name)).toEqual(['build', undefined]);
    expect(df.stages[1]!.instructions[0]!.flags).toEqual({ from: 'build' });
    failsAt('FROM a AS x\nFROM b AS X', 2, /duplicate name x/);
    failsAt('FROM a AS 1x', 1, /invalid name for build stage/);
    failsAt('FROM a b', 1, /one or three arguments/);
  });

  it('splits words like docker: quotes kept together, escapes kept for the expander', () => {
    expect(splitWords('a="b c" d=e\\ f', '\\')).toEqual(['a="b c"', 'd=e\\ f']);
  });
});

describe('what berth does not support fails with the line', () => {
  it('RUN --mount, RUN --network, COPY --link', () => {
    failsAt('FROM x\n\nRUN --mount=type=cache,target=/root/.cache pip install x', 3, /RUN --mount is a BuildKit feature/);
    failsAt('FROM x\nRUN --network=none true', 2, /RUN --network/);
    failsAt('FROM x\nCOPY --link a /b', 2, /COPY --link/);
  });

  it('heredocs', () => {
    failsAt('FROM x\nRUN <<EOF\necho hi\nEOF', 2, /heredocs \(<<EOF\) are not supported/);
    failsAt('FROM x\nCOPY <<-"END" /file', 2, /heredocs/);
  });

  it('unknown instructions and flags', () => {
    failsAt('FROM x\nRUNN true', 2, /unknown instruction: RUNN/);
    failsAt('FROM x\nCOPY --owner=1 a b', 2, /unknown flag: --owner/);
    failsAt('FROM x\nRUN --frobnicate true', 2, /unknown flag/);
  });

  it('a file without FROM', () => {
    expect(() => parseDockerfile('# nothing\n')).toThrow(/no FROM/);
  });
});

describe('.dockerignore', () => {
  const ignored = (rules: string, path: string) => isIgnored(parseDockerignore(rules), path);

  it('the reference example: */temp*, */*/temp*, temp?', () => {
    const rules = '# comment\n*/temp*\n*/*/temp*\ntemp?';
    expect(ignored(rules, 'somedir/temporary.txt')).toBe(true);
    expect(ignored(rules, 'somedir/temp')).toBe(true);
    expect(ignored(rules, 'somedir/subdir/temporary.txt')).toBe(true);
    expect(ignored(rules, 'tempa')).toBe(true);
    expect(ignored(rules, 'temp')).toBe(false);
    expect(ignored(rules, 'other.txt')).toBe(false);
  });

  it('** matches any number of directories; leading / and ./ are the context root', () => {
    expect(ignored('**/*.go', 'a/b/c.go')).toBe(true);
    expect(ignored('**/*.go', 'c.go')).toBe(true);
    expect(ignored('/secret', 'secret')).toBe(true);
    expect(ignored('./secret', 'secret')).toBe(true);
  });

  it('! exceptions: the last matching line decides (reference: *.md, !README*.md, README-secret.md)', () => {
    const rules = '*.md\n!README*.md\nREADME-secret.md';
    expect(ignored(rules, 'CHANGES.md')).toBe(true);
    expect(ignored(rules, 'README.md')).toBe(false);
    expect(ignored(rules, 'README-secret.md')).toBe(true);
    expect(ignored('*.md\nREADME-secret.md\n!README*.md', 'README-secret.md')).toBe(false);
  });

  it('a pattern naming a directory excludes what is in it', () => {
    expect(ignored('node_modules', 'node_modules/x/index.js')).toBe(true);
    expect(ignored('build\n!build/keep.txt', 'build/keep.txt')).toBe(false);
    expect(ignored('build\n!build/keep.txt', 'build/other.txt')).toBe(true);
  });
});
