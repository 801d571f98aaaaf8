// `berth ps`: the containers of the local store, running and (with -a) stopped, as
// docker ps shows them: -q for ids only, -f KEY=VALUE filters (status, name, id,
// ancestor, label), --format with docker's field names ({{.ID}}, {{.Names}}, ...).

import type { Command } from 'commander';
import { Containers, type ContainerState } from '../../runtime/containers.js';
import { isRunning } from '../../runtime/lifecycle.js';
import { RuntimeStore } from '../../runtime/store.js';
import { renderTemplate } from '../go-template.js';
import { printTable } from './images.js';
import { berthFails, withRoot, type RootFlags } from './container.js';
import { collect } from './run.js';

interface PsFlags extends RootFlags {
  all?: boolean;
  quiet?: boolean;
  filter: string[];
  format?: string;
  json?: boolean;
}

const STATUSES = ['created', 'running', 'exited'];

function filterMatches(c: ContainerState, filter: string): boolean {
  const eq = filter.indexOf('=');
  if (eq <= 0) throw new Error(`invalid filter ${filter} (use KEY=VALUE)`);
  const key = filter.slice(0, eq);
  const value = filter.slice(eq + 1);
  switch (key) {
    case 'status':
      if (!STATUSES.includes(value)) throw new Error(`invalid filter status=${value} (use ${STATUSES.join(', ')})`);
      return c.status === value;
    case 'name':
      return c.name.includes(value);
    case 'id':
      return c.id.startsWith(value);
    case 'ancestor':
      return c.image === value || c.image.startsWith(`${value}:`) || c.imageId === value;
    case 'label': {
      const [k, v] = value.split('=');
      const labels = c.config?.labels ?? {};
      return k! in labels && (v === undefined || labels[k!] === v);
    }
    default:
      throw new Error(`invalid filter ${key} (use status, name, id, ancestor or label)`);
  }
}

function ports(c: ContainerState): string {
  return isRunning(c) ? (c.ports ?? []).map((p) => `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.protocol}`).join(', ') : '';
}

function status(c: ContainerState): string {
  if (c.status === 'exited') return `Exited (${c.exitCode ?? '?'})${c.oomKilled ? ' OOM' : ''}`;
  return c.status === 'running' ? 'Up' : 'Created';
}

/** `--format 'table ...'`: the header line docker prints for each field. */
const HEADERS = {
  ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', Status: 'STATUS', State: 'STATE', Ports: 'PORTS', Names: 'NAMES', Labels: 'LABELS',
};

/** The fields `docker ps --format` offers. */
function psView(c: ContainerState): Record<string, unknown> {
  return {
    ID: c.id.slice(0, 12),
    Image: c.image,
    Command: JSON.stringify(c.command.join(' ').slice(0, 30)),
    CreatedAt: c.created.replace('T', ' ').slice(0, 19),
    Status: status(c),
    State: c.status,
    Ports: ports(c),
    Names: c.name,
    Labels: Object.entries(c.config?.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
  };
}

export function register(program: Command): void {
  withRoot(program.command('ps').description('list containers (running ones; -a for all)'))
    .option('-a, --all', 'include stopped containers')
    .option('-q, --quiet', 'print only the container ids')
    .option('-f, --filter <key=value>', 'filter: status=, name=, id=, ancestor=, label=', collect, [])
    .option('--format <template>', 'Go template with docker ps fields, e.g. {{.ID}} {{.Names}}')
    .option('--json', 'print JSON')
    .action(berthFails(async (flags: PsFlags) => {
      const all = await new Containers(new RuntimeStore(flags.root)).list();
      // A status filter asks for stopped containers too, as in docker.
      const shown = all.filter((c) => (flags.all || flags.filter.length > 0 || c.status === 'running') && flags.filter.every((f) => filterMatches(c, f)));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
      } else if (flags.quiet) {
        for (const c of shown) process.stdout.write(`${c.id.slice(0, 12)}\n`);
      } else if (flags.format !== undefined) {
        const table = flags.format.startsWith('table ');
        const template = table ? flags.format.slice(6) : flags.format;
        if (table) process.stdout.write(`${renderTemplate(template, HEADERS)}\n`);
        for (const c of shown) process.stdout.write(`${renderTemplate(template, psView(c))}\n`);
      } else {
        printTable(
          ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'],
          shown.map((c) => {
            const v = psView(c);
            return [v.ID, v.Image, v.Command, v.CreatedAt, v.Status, v.Ports, v.Names] as string[];
          }),
        );
      }
    }));
}
