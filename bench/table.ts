// The results as Markdown tables (ready for the README): the figures with their ratio
// and target, then the CPU use of the load generator and of each server per row. With
// several rounds each figure is min/median/max, and a target counts as met only when
// the ratio of every round meets it (rounds pair the registries' samples in order).

import type { Figure } from './workloads.js';

export interface RowSpec {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  /** Target: Berth/reference at least this. */
  minRatio?: number;
  /** Target: Berth/reference at most this (for latencies: strictly below). */
  maxRatio?: number;
  /** Target: Berth's own figure at most this. */
  maxBerth?: number;
}

export type Sample = Figure & { serverCpuPercent: number };
/** Row key -> registry name -> one sample per round. */
export type Measured = Map<string, Map<string, Sample[]>>;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function target(row: RowSpec): string {
  if (row.minRatio !== undefined) return `>= ${row.minRatio}x`;
  if (row.maxRatio !== undefined) return `< ${row.maxRatio}x`;
  if (row.maxBerth !== undefined) return `<= ${row.maxBerth} ${row.unit}`;
  return '';
}

/** Whether every round met the target ('yes'), or not ('NO'); '' where there is none. */
function met(row: RowSpec, f: { berth: number[]; ratios: number[] }): string {
  const every = (values: number[], ok: (v: number) => boolean) => (values.length === 0 ? '' : values.every(ok) ? 'yes' : 'NO');
  if (row.maxBerth !== undefined) return every(f.berth, (b) => b <= row.maxBerth!);
  if (row.minRatio !== undefined) return every(f.ratios, (r) => r >= row.minRatio!);
  if (row.maxRatio !== undefined) return every(f.ratios, (r) => r < row.maxRatio!);
  return '';
}

function markdown(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The row's samples per registry, and the Berth/reference ratio of each round. */
function figures(measured: Measured, key: string) {
  const samples = (name: string) => measured.get(key)?.get(name)?.map((s) => s.value) ?? [];
  const berth = samples('berth');
  const reference = samples('reference');
  const ratios = reference.length ? berth.slice(0, reference.length).map((b, i) => b / reference[i]!).filter((r) => Number.isFinite(r)) : [];
  return { berth, reference, ratios };
}

/** min/median/max of several samples, the one value of a single sample. */
function spread(values: number[], format: (v: number) => string = fmt): string {
  if (values.length === 0) return '-';
  if (values.length === 1) return format(values[0]!);
  return `${format(Math.min(...values))} / ${format(median(values))} / ${format(Math.max(...values))}`;
}

/** Every sample as JSON (`npm run bench -- --json`), to compare one change's effect run to run. */
export function formatJson(specs: RowSpec[], measured: Measured, context: Record<string, unknown>): string {
  const rows = specs
    .filter((row) => measured.has(row.key))
    .map((row) => ({ ...row, ...figures(measured, row.key), target: target(row) || undefined, met: met(row, figures(measured, row.key)) || undefined }));
  return JSON.stringify({ ...context, rows }, null, 2);
}

export function formatTable(specs: RowSpec[], measured: Measured, names: string[]): string {
  const several = [...measured.values()].some((byName) => [...byName.values()].some((samples) => samples.length > 1));
  const main = specs
    .filter((row) => measured.has(row.key))
    .map((row) => {
      const f = figures(measured, row.key);
      return [
        row.label,
        row.unit,
        spread(f.berth),
        spread(f.reference),
        spread(f.ratios, (r) => `${r.toFixed(2)}x`),
        `${row.better} is better`,
        target(row),
        met(row, f),
      ];
    });
  const cpu = (key: string, name: string, field: 'generatorCpuPercent' | 'serverCpuPercent') => {
    const samples = measured.get(key)?.get(name) ?? [];
    const values = samples.map((s) => s[field]).filter((v): v is number => v !== undefined);
    return values.length ? `${median(values).toFixed(0)}%` : '-';
  };
  const details = specs
    .filter((row) => measured.has(row.key) && !row.key.endsWith('.p99') && !row.key.endsWith('.cpu'))
    .map((row) => [
      row.label,
      ...names.flatMap((n) => [cpu(row.key, n, 'generatorCpuPercent'), cpu(row.key, n, 'serverCpuPercent')]),
      names
        .map((n) => {
          const note = measured.get(row.key)?.get(n)?.find((s) => s.note)?.note;
          return note ? `${n}: ${note}` : '';
        })
        .filter(Boolean)
        .join('; '),
    ]);

  return [
    ...(several ? ['Figures are min / median / max over the rounds; "met" means in every round.', ''] : []),
    markdown(['workload', 'unit', 'Berth', 'reference', 'Berth/reference', 'direction', 'target', 'met'], main),
    '',
    'CPU during each measurement (100% = one core; client = this load generator, all threads):',
    '',
    markdown(['workload', ...names.flatMap((n) => [`client (${n})`, `server (${n})`]), 'notes'], details),
  ].join('\n');
}
