// Sizes as every command prints them: binary units (KiB, MiB, GiB), the units the
// configuration's sizes (`512MiB`) and --memory use, so a number printed can be typed back.

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
