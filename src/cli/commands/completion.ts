// `berth completion bash|zsh|fish`: a shell completion script, generated from the
// commands and options registered on the program, so it never falls behind them.
//
//   source <(berth completion bash)                                  # ~/.bashrc
//   berth completion zsh > "${fpath[1]}/_berth"                      # zsh, then compinit
//   berth completion fish > ~/.config/fish/completions/berth.fish

import type { Command } from 'commander';

interface CommandInfo {
  name: string;
  description: string;
  options: { flags: string[]; description: string; takesValue: boolean; optionalValue?: boolean }[];
}

function describe(program: Command): CommandInfo[] {
  return program.commands
    .filter((c) => c.name() !== 'help')
    .map((c) => ({
      name: c.name(),
      description: c.description(),
      options: [
        ...c.options.map((o) => ({
          flags: [o.long, o.short].filter((f): f is string => !!f),
          description: o.description,
          takesValue: o.required || o.optional,
          optionalValue: o.optional,
        })),
        { flags: ['--help', '-h'], description: 'display help for command', takesValue: false },
      ],
    }));
}

const single = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function bash(commands: CommandInfo[]): string {
  const cases = commands
    .map((c) => `    ${c.name}) opts=${single(c.options.flatMap((o) => o.flags).join(' '))} ;;`)
    .join('\n');
  return `# bash completion for berth: source <(berth completion bash)
_berth() {
  local cur=\${COMP_WORDS[COMP_CWORD]} opts=''
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W ${single(commands.map((c) => c.name).join(' '))} -- "$cur"))
    return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _berth berth
`;
}

/** zsh _arguments spec text: brackets and colons are special there. */
const zshText = (s: string) => s.replace(/[[\]:\\]/g, (c) => `\\${c}`).replace(/'/g, `'\\''`);

function zsh(commands: CommandInfo[]): string {
  const list = commands.map((c) => `    '${c.name}:${zshText(c.description)}'`).join('\n');
  const cases = commands
    .map((c) => {
      const specs = c.options.map((o) => {
        const names = o.flags.length > 1 ? `(${o.flags.join(' ')})'{${o.flags.join(',')}}'` : o.flags[0];
        const value = o.optionalValue ? '::value:(true false)' : o.takesValue ? ':value:_files' : '';
        return `'${names}[${zshText(o.description)}]${value}'`;
      });
      return `    ${c.name}) _arguments -s ${specs.join(' ')} '*:file:_files' ;;`;
    })
    .join('\n');
  return `#compdef berth
# zsh completion for berth: berth completion zsh > "\${fpath[1]}/_berth", then compinit
_berth() {
  local -a commands
  commands=(
${list}
  )
  if (( CURRENT == 2 )); then
    _describe 'berth command' commands
    return
  fi
  case $words[2] in
${cases}
  esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _berth "$@"; else compdef _berth berth; fi
`;
}

function fish(commands: CommandInfo[]): string {
  const lines = ['# fish completion for berth: berth completion fish > ~/.config/fish/completions/berth.fish', 'complete -c berth -f'];
  for (const c of commands) {
    lines.push(`complete -c berth -n __fish_use_subcommand -a ${c.name} -d ${single(c.description)}`);
    for (const o of c.options) {
      const parts = o.flags.map((f) => (f.startsWith('--') ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`));
      lines.push(`complete -c berth -n '__fish_seen_subcommand_from ${c.name}' ${parts.join(' ')}${o.takesValue ? ' -r -F' : ''} -d ${single(o.description)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const SHELLS = { bash, zsh, fish } as const;

export function register(program: Command): void {
  program
    .command('completion <shell>')
    .description('print a completion script for bash, zsh or fish (e.g. source <(berth completion bash))')
    .action((shell: string) => {
      const generate = SHELLS[shell as keyof typeof SHELLS];
      if (!generate) throw new Error(`no completion for ${shell}: choose bash, zsh or fish`);
      process.stdout.write(generate(describe(program)));
    });
}
