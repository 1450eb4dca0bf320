// Every command's help has a description and an example; `metaspn completion bash|zsh|fish` prints
// a script that completes commands, subcommands, options and option values (bash driven here for
// real; zsh and fish syntax-checked when they are installed).
import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { bashScript, completionTree, fishScript, zshScript } from '../../src/cli/commands/completion.js';
import { EXAMPLES } from '../../src/cli/help.js';
import { buildProgram } from '../../src/cli/main.js';
import { cli } from './cli.js';

function commands(program: Command): { path: string; c: Command }[] {
  const out: { path: string; c: Command }[] = [];
  const walk = (c: Command, path: string[]): void => {
    out.push({ path: path.join(' '), c });
    for (const s of c.commands) walk(s, [...path, s.name()]);
  };
  walk(program, []);
  return out;
}

/** The help a command prints, with the text added after it. */
function helpOf(c: Command): string {
  let text = '';
  c.configureOutput({ writeOut: (s) => void (text += s), writeErr: (s) => void (text += s) });
  c.outputHelp();
  return text;
}

const installed = (shell: string): boolean => spawnSync(shell, ['--version'], { encoding: 'utf8' }).status === 0;

describe('help', () => {
  it('every command has a description and at least one example', async () => {
    const all = commands(await buildProgram());
    expect(all.length).toBeGreaterThan(40);
    for (const { path, c } of all) {
      expect(c.description(), path || 'metaspn').not.toBe('');
      const help = helpOf(c);
      expect(help, path || 'metaspn').toMatch(/\nExamples?:\n {2}\$ /);
    }
    // No example for a command that does not exist.
    const paths = new Set(all.map((x) => x.path));
    expect(Object.keys(EXAMPLES).filter((k) => !paths.has(k))).toEqual([]);
  });
});

describe('metaspn completion', () => {
  it('bash: completes commands, subcommands, options and option values at any depth', async () => {
    const script = bashScript(completionTree(await buildProgram()));
    const cases: [string[], string][] = [
      [['metaspn', 'qu'], 'queue'],
      [['metaspn', 'queue', ''], 'list stats deadletter retry enqueue pause resume --help'],
      [['metaspn', 'queue', 'deadletter', 'd'], 'discard'],
      [['metaspn', '--json', 'queue', 'deadletter', 'discard', 'w', '--a'], '--all'],
      [['metaspn', 'queue', 'stats', '--workspace', '.', 'x', '--js'], '--json'],
      [['metaspn', 'worker', 'run', 'm:E', '--isolation', ''], 'none thread process'],
      [['metaspn', 's1', 'run-local', '--on-lock-held', 'w'], 'wait'],
      [['metaspn', 'completion', ''], '--help'],
    ];
    const body = cases.map(([words]) => `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _metaspn; echo "\${COMPREPLY[*]}"`).join('\n');
    const r = spawnSync('bash', ['-c', `${script}\n${body}`], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').slice(0, cases.length)).toEqual(cases.map((c) => c[1]));
  });

  it.skipIf(!installed('zsh'))('zsh: the script parses', async () => {
    const r = spawnSync('zsh', ['-n'], { input: zshScript(completionTree(await buildProgram())), encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  it.skipIf(!installed('fish'))('fish: the script parses', async () => {
    const r = spawnSync('fish', ['-n'], { input: fishScript(completionTree(await buildProgram())), encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  it('the CLI prints each script; another shell is a usage error (64)', () => {
    for (const shell of ['bash', 'zsh', 'fish']) {
      const r = cli(['completion', shell]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`# metaspn completion for ${shell}.`);
    }
    const bad = cli(['completion', 'tcsh']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/^error: command-argument value 'tcsh' is invalid for argument 'shell'. Allowed choices are bash, zsh, fish.\n/);
  });
});
