// The results as Markdown tables (ready for the README): the figures with their ratio
// and target, then the CPU use of the load generator and of each server per row.

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

function met(row: RowSpec, berth: number | undefined, ratio: number | undefined): string {
  if (row.maxBerth !== undefined) return berth === undefined ? '' : berth <= row.maxBerth ? 'yes' : 'NO';
  if (ratio === undefined) return '';
  if (row.minRatio !== undefined) return ratio >= row.minRatio ? 'yes' : 'NO';
  if (row.maxRatio !== undefined) return ratio < row.maxRatio ? 'yes' : 'NO';
  return '';
}

function markdown(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function formatTable(specs: RowSpec[], measured: Measured, names: string[]): string {
  const value = (key: string, name: string) => {
    const samples = measured.get(key)?.get(name);
    return samples?.length ? median(samples.map((s) => s.value)) : undefined;
  };
  const hasReference = names.includes('reference');
  const main = specs
    .filter((row) => measured.has(row.key))
    .map((row) => {
      const b = value(row.key, 'berth');
      const r = hasReference ? value(row.key, 'reference') : undefined;
      const ratio = b !== undefined && r !== undefined && r > 0 ? b / r : undefined;
      return [
        row.label,
        row.unit,
        fmt(b),
        fmt(r),
        ratio === undefined ? '-' : `${ratio.toFixed(2)}x`,
        `${row.better} is better`,
        target(row),
        met(row, b, ratio),
      ];
    });

  const cpu = (key: string, name: string, field: 'generatorCpuPercent' | 'serverCpuPercent') => {
    const samples = measured.get(key)?.get(name) ?? [];
    const values = samples.map((s) => s[field]).filter((v): v is number => v !== undefined);
    return values.length ? `${median(values).toFixed(0)}%` : '-';
  };
  const details = specs
    .filter((row) => measured.has(row.key) && !row.key.endsWith('.p99'))
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
    markdown(['workload', 'unit', 'Berth', 'reference', 'Berth/reference', 'direction', 'target', 'met'], main),
    '',
    'CPU during each measurement (100% = one core; client = this load generator, all threads):',
    '',
    markdown(['workload', ...names.flatMap((n) => [`client (${n})`, `server (${n})`]), 'notes'], details),
  ].join('\n');
}
