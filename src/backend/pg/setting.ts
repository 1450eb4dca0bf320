import * as z from '../../zod.js';
import { DataInvalidError, UsageError } from '../../guard/errors.js';
import { limitSchema } from '../../config/limits.js';

/**
 * Which backend a command uses, and where that choice came from. Pure: no I/O, no connection.
 *
 * Layers, weakest first (as for every setting): `backend` in metaspn.config.json <
 * `METASPN_DATABASE_URL` < `--database-url`. With none of them: the file backend, unchanged.
 */

/** A schema name: an unquoted PostgreSQL identifier, lower case (so it never needs quoting by hand). */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Default schema that holds metaspn's tables. */
export const DEFAULT_SCHEMA = 'metaspn';

/** Default bound of the connection pool of one process. */
export const DEFAULT_POOL_MAX = 4;

/** Longest database URL accepted, in characters. */
export const URL_MAX_CHARS = 2048;

const urlSchema = z
  .string()
  .max(URL_MAX_CHARS)
  .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL');

/**
 * `backend` in metaspn.config.json: `{"url": "postgres://…", "schema"?: "metaspn", "pool_max"?: 4}`.
 * - `url`: a `postgres://` or `postgresql://` URL, at most 2048 characters (a password in it is
 *   never printed). Prefer `METASPN_DATABASE_URL` for URLs with a password.
 * - `schema`: where metaspn's tables live, `[a-z_][a-z0-9_]{0,62}`; default `metaspn`. Machines
 *   that name the same database and schema share their queues.
 * - `pool_max`: connections one process opens at most, 1 to 64; default 4.
 */
export const backendConfigSchema = z
  .object({
    url: urlSchema.optional(),
    schema: z.string().regex(SCHEMA_NAME, 'must match [a-z_][a-z0-9_]{0,62} (a lower-case identifier)').optional(),
    pool_max: limitSchema('pool_max').optional(),
  })
  .strict();

export type BackendConfig = z.infer<typeof backendConfigSchema>;

/** The PostgreSQL backend, resolved: the code sees only this. */
export interface PgSetting {
  kind: 'postgres';
  url: string;
  schema: string;
  pool_max: number;
  /** Where the URL came from, for messages: `--database-url`, `METASPN_DATABASE_URL` or `<config file>: backend.url`. */
  source: string;
}

/**
 * The backend to use: PostgreSQL when a URL is given by any layer, else null (the file backend).
 * `schema` and `pool_max` come from the config file whichever layer gave the URL.
 * @throws UsageError (64) for a bad `--database-url`; DataInvalidError (20) for a bad
 *   `METASPN_DATABASE_URL` (the config file's value is checked by its schema when it is loaded).
 */
export function resolveBackend(o: { flag?: string | undefined; env?: NodeJS.ProcessEnv; config?: BackendConfig | undefined; configFile?: string }): PgSetting | null {
  const env = o.env ?? process.env;
  const base = { schema: o.config?.schema ?? DEFAULT_SCHEMA, pool_max: o.config?.pool_max ?? DEFAULT_POOL_MAX };
  if (o.flag !== undefined) {
    const bad = urlRule(o.flag);
    if (bad) throw new UsageError(`--database-url ${bad}`, { hint: 'give --database-url postgres://USER@HOST:5432/DB' });
    return { kind: 'postgres', url: o.flag, ...base, source: '--database-url' };
  }
  const fromEnv = env.METASPN_DATABASE_URL;
  if (fromEnv !== undefined && fromEnv !== '') {
    const bad = urlRule(fromEnv);
    if (bad) throw new DataInvalidError('environment METASPN_DATABASE_URL', null, bad, { hint: 'set it to postgres://USER@HOST:5432/DB, or unset it for the file backend' });
    return { kind: 'postgres', url: fromEnv, ...base, source: 'METASPN_DATABASE_URL' };
  }
  if (o.config?.url !== undefined) return { kind: 'postgres', url: o.config.url, ...base, source: `${o.configFile ?? 'metaspn.config.json'}: backend.url` };
  return null;
}

/** Why a URL is refused, or null. */
function urlRule(url: string): string | null {
  const r = urlSchema.safeParse(url);
  if (r.success) {
    try {
      new URL(url);
      return null;
    } catch {
      return `is not a valid URL: ${redactUrl(url)}`;
    }
  }
  return url.length > URL_MAX_CHARS ? `is longer than ${URL_MAX_CHARS} characters` : `must be a postgres:// or postgresql:// URL, got "${redactUrl(url).slice(0, 80)}"`;
}

/** A URL as it may be printed: the password replaced by `***`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@\s]*:)[^@\s]*@/i, '$1***@');
}

/** `host:port/database` of a URL, for messages (never the password). */
export function targetOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname && u.pathname !== '/' ? u.pathname : '/'}`;
  } catch {
    return redactUrl(url);
  }
}
