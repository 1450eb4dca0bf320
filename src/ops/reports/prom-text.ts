/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for `metaspn verify`
 * and the tests: prom-client writes the format but has no parser. It checks what a scraper relies
 * on: metric and label names, quoted and escaped label values, numeric values (NaN, ±Inf), one
 * TYPE per family given before its samples, and histogram/summary sample suffixes.
 */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp: number | null;
}

export interface PromFamily {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | null;
  samples: PromSample[];
}

export interface PromParse {
  families: Map<string, PromFamily>;
  /** `line N: rule`; empty when the text is valid. */
  errors: string[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string): number | null {
  if (s === 'NaN') return NaN;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return null;
  return Number(s);
}

/** Labels from just after `{` to the matching `}`: returns them and the index after `}`, or an error. */
function parseLabels(line: string, start: number): { labels: Record<string, string>; end: number } | string {
  const labels: Record<string, string> = {};
  let i = start;
  for (;;) {
    while (line[i] === ' ') i++;
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0) return 'a label without "="';
    const name = line.slice(i, eq).trim();
    if (!LABEL.test(name)) return `bad label name "${name}"`;
    if (name in labels) return `label "${name}" given twice`;
    i = eq + 1;
    if (line[i] !== '"') return `the value of label "${name}" is not quoted`;
    i++;
    let value = '';
    for (;;) {
      const c = line[i];
      if (c === undefined) return `the value of label "${name}" is not closed`;
      if (c === '"') break;
      if (c === '\\') {
        const n = line[i + 1];
        if (n === 'n') value += '\n';
        else if (n === '\\' || n === '"') value += n;
        else return `bad escape "\\${n ?? ''}" in label "${name}"`;
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    labels[name] = value;
    i++;
    while (line[i] === ' ') i++;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') return `expected "," or "}" after label "${name}"`;
  }
}

/** The family a sample belongs to: its own name, or the name without a histogram/summary suffix. */
function familyOf(name: string, families: Map<string, PromFamily>): PromFamily | undefined {
  const own = families.get(name);
  if (own) return own;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const f = m ? families.get(m[1]!) : undefined;
  if (f && (f.type === 'histogram' || f.type === 'summary') && !(f.type === 'summary' && m![2] === 'bucket')) return f;
  return undefined;
}

export function parsePrometheusText(text: string): PromParse {
  const families = new Map<string, PromFamily>();
  const errors: string[] = [];
  const withSamples = new Set<string>();
  const typeSeen = new Set<string>();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  else if (text.length > 0) errors.push(`line ${lines.length}: the text does not end with a newline`);
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s*(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (!m) return; // a plain comment
      const [, kw, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string | undefined];
      if (!NAME.test(name)) return void errors.push(`line ${n}: bad metric name "${name}" in # ${kw}`);
      const f = families.get(name) ?? { name, type: 'untyped' as const, help: null, samples: [] };
      if (kw === 'HELP') {
        if (f.help !== null) errors.push(`line ${n}: a second # HELP for ${name}`);
        f.help = (rest ?? '').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      } else {
        const t = (rest ?? '').trim();
        if (!TYPES.has(t)) return void errors.push(`line ${n}: unknown type "${t}" for ${name}`);
        if (typeSeen.has(name)) errors.push(`line ${n}: a second # TYPE for ${name}`);
        if (withSamples.has(name)) errors.push(`line ${n}: # TYPE for ${name} after its samples`);
        typeSeen.add(name);
        f.type = t as PromFamily['type'];
      }
      families.set(name, f);
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!m) return void errors.push(`line ${n}: not a sample, a # HELP or a # TYPE line: "${line.slice(0, 60)}"`);
    const name = m[1]!;
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') {
      const l = parseLabels(line, i + 1);
      if (typeof l === 'string') return void errors.push(`line ${n}: ${name}: ${l}`);
      labels = l.labels;
      i = l.end;
    }
    const rest = line.slice(i);
    if (!/^[ \t]+/.test(rest)) return void errors.push(`line ${n}: ${name}: no space before the value`);
    const parts = rest.trim().split(/[ \t]+/);
    if (parts.length > 2) return void errors.push(`line ${n}: ${name}: more than a value and a timestamp`);
    const value = parseValue(parts[0]!);
    if (value === null) return void errors.push(`line ${n}: ${name}: "${parts[0]}" is not a number`);
    const ts = parts[1] === undefined ? null : /^-?\d+$/.test(parts[1]) ? Number(parts[1]) : NaN;
    if (Number.isNaN(ts)) return void errors.push(`line ${n}: ${name}: timestamp "${parts[1]}" is not whole milliseconds`);
    let f = familyOf(name, families);
    if (!f) {
      f = { name, type: 'untyped', help: null, samples: [] };
      families.set(name, f);
    }
    if (f.type === 'histogram' && name === `${f.name}_bucket` && labels.le === undefined) errors.push(`line ${n}: ${name}: a histogram bucket without "le"`);
    if (f.type === 'counter' && value < 0) errors.push(`line ${n}: ${name}: a counter below 0`);
    withSamples.add(f.name);
    f.samples.push({ name, labels, value, timestamp: ts });
  });
  return { families, errors };
}
