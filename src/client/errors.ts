// Errors a registry answered with, turned into messages that say what to do next.

export interface OciErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

export class RegistryHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly registry: string,
    /** The OCI error codes from the body, e.g. MANIFEST_UNKNOWN. */
    readonly codes: string[] = [],
  ) {
    super(message);
  }

  has(code: string): boolean {
    return this.codes.includes(code);
  }
}

/** The `errors` of an OCI error body, or [] when the body is not one. */
export function parseOciErrors(body: string): OciErrorEntry[] {
  try {
    const parsed = JSON.parse(body) as { errors?: OciErrorEntry[] };
    return Array.isArray(parsed.errors) ? parsed.errors : [];
  } catch {
    return [];
  }
}

export function describeFailure(opts: {
  registry: string;
  status: number;
  what: string;
  body: string;
  hadCredentials: boolean;
}): RegistryHttpError {
  const { registry, status, what } = opts;
  const errors = parseOciErrors(opts.body);
  const detail = errors.length
    ? errors.map((e) => `${e.code}${e.message ? `: ${e.message}` : ''}`).join('; ')
    : opts.body.trim().slice(0, 200);
  let hint = '';
  if (status === 401) {
    hint = opts.hadCredentials
      ? `: the credentials for ${registry} were refused; run \`berth login ${registry}\` again`
      : `: run \`berth login ${registry}\``;
  } else if (status === 403) {
    hint = `: access denied for ${what}; check the access rules for your user on ${registry}`;
  }
  const message = status === 401 || status === 403
    ? `${status} from ${registry}${hint}${detail ? ` (${detail})` : ''}`
    : `${what}: ${status} from ${registry}${detail ? `: ${detail}` : ''}`;
  return new RegistryHttpError(message, status, registry, errors.map((e) => e.code));
}
