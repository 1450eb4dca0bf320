import { Argument, type Command } from 'commander';
import { UsageError } from '../../guard/errors.js';

/** One command of the tree, as the completion scripts need it. */
export interface CompletionNode {
  /** Words after `metaspn`: `queue deadletter discard`; '' for metaspn itself. */
  path: string;
  description: string;
  subcommands: { name: string; description: string }[];
  options: { flag: string; description: string; takesValue: boolean; choices: string[] | null; kind: 'dir' | 'file' | 'any' }[];
}

/** Options whose values are folders or files (completed from the file system). */
const DIR_OPTIONS = new Set(['--workspace']);
const FILE_OPTIONS = new Set(['--file']);

/** Every command of the program with its subcommands and options, `metaspn` itself first. */
export function completionTree(program: Command): CompletionNode[] {
  const out: CompletionNode[] = [];
  const walk = (c: Command, path: string[]): void => {
    out.push({
      path: path.join(' '),
      description: c.description(),
      subcommands: c.commands.filter((s) => !(s as unknown as { _hidden?: boolean })._hidden).map((s) => ({ name: s.name(), description: s.description() })),
      options: [
        ...c.options.map((o) => ({
          flag: o.long ?? o.short ?? '',
          description: o.description,
          takesValue: o.required || o.optional,
          choices: o.argChoices ?? null,
          kind: DIR_OPTIONS.has(o.long ?? '') ? ('dir' as const) : FILE_OPTIONS.has(o.long ?? '') ? ('file' as const) : ('any' as const),
        })),
        { flag: '--help', description: 'show help', takesValue: false, choices: null, kind: 'any' as const },
      ].filter((o) => o.flag !== ''),
    });
    for (const s of c.commands) walk(s, [...path, s.name()]);
  };
  walk(program, []);
  return out;
}

/** A word safe inside single quotes in bash, zsh and fish. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** fish quotes differently: a backslash escapes the quote. */
function fq(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** bash (and zsh through bashcompinit): one function that finds the command path, then offers its words. */
export function bashScript(tree: readonly CompletionNode[]): string {
  const paths = tree.filter((n) => n.path !== '').map((n) => n.path);
  const valueOptions = [...new Set(tree.flatMap((n) => n.options.filter((o) => o.takesValue).map((o) => o.flag)))];
  const lines: string[] = [];
  lines.push('# metaspn completion for bash. Load it: eval "$(metaspn completion bash)" (e.g. in ~/.bashrc),');
  lines.push('# or save it as /etc/bash_completion.d/metaspn.');
  lines.push('_metaspn() {');
  lines.push('  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" path="" w i next');
  lines.push('  for ((i = 1; i < COMP_CWORD; i++)); do');
  lines.push('    w="${COMP_WORDS[i]}"');
  lines.push(`    case "$w" in ${valueOptions.map((o) => o).join('|')}) ((i++)); continue ;; -*) continue ;; esac`);
  lines.push('    next="${path:+$path }$w"');
  lines.push('    case "$next" in');
  lines.push(`      ${paths.map((p) => q(p)).join('|')}) path="$next" ;;`);
  lines.push('    esac');
  lines.push('  done');
  // The value of an option: its choices, folders, or the default (file names).
  lines.push('  case "$path|$prev" in');
  for (const n of tree) {
    for (const o of n.options.filter((x) => x.takesValue)) {
      const key = q(`${n.path}|${o.flag}`);
      if (o.choices) lines.push(`    ${key}) COMPREPLY=($(compgen -W ${q(o.choices.join(' '))} -- "$cur")); return ;;`);
      else if (o.kind === 'dir') lines.push(`    ${key}) COMPREPLY=($(compgen -d -- "$cur")); return ;;`);
      else lines.push(`    ${key}) COMPREPLY=(); return ;;`);
    }
  }
  lines.push('  esac');
  lines.push('  local words');
  lines.push('  case "$path" in');
  for (const n of tree) {
    const words = [...n.subcommands.map((s) => s.name), ...n.options.map((o) => o.flag), ...(n.path === '' ? ['--version'] : [])];
    lines.push(`    ${q(n.path)}) words=${q(words.join(' '))} ;;`);
  }
  lines.push('  esac');
  lines.push('  COMPREPLY=($(compgen -W "$words" -- "$cur"))');
  lines.push('}');
  lines.push('complete -o default -F _metaspn metaspn');
  return `${lines.join('\n')}\n`;
}

/** zsh: the bash function through bashcompinit (what zsh offers for bash completions). */
export function zshScript(tree: readonly CompletionNode[]): string {
  return `# metaspn completion for zsh. Load it: eval "$(metaspn completion zsh)" in ~/.zshrc, after compinit.
autoload -U +X bashcompinit && bashcompinit
${bashScript(tree).split('\n').slice(2).join('\n')}`;
}

/** fish: one `complete` line per subcommand and option, under a condition naming its command path. */
export function fishScript(tree: readonly CompletionNode[]): string {
  const paths = tree.filter((n) => n.path !== '').map((n) => n.path);
  const valueOptions = [...new Set(tree.flatMap((n) => n.options.filter((o) => o.takesValue).map((o) => o.flag)))];
  const lines: string[] = [];
  lines.push('# metaspn completion for fish. Load it: metaspn completion fish | source');
  lines.push('# (or save it as ~/.config/fish/completions/metaspn.fish).');
  lines.push(`set -g __metaspn_paths ${paths.map(fq).join(' ')}`);
  lines.push(`set -g __metaspn_value_options ${valueOptions.map(fq).join(' ')}`);
  lines.push('function __metaspn_path --description "true when the command line names this metaspn command"');
  lines.push('    set -l path ""');
  lines.push('    set -l skip 0');
  lines.push('    for w in (commandline -opc)[2..-1]');
  lines.push('        if test $skip = 1; set skip 0; continue; end');
  lines.push('        if contains -- $w $__metaspn_value_options; set skip 1; continue; end');
  lines.push("        if string match -q -- '-*' $w; continue; end");
  lines.push('        set -l next (string trim -- "$path $w")');
  lines.push('        if contains -- $next $__metaspn_paths; set path $next; end');
  lines.push('    end');
  lines.push('    test "$path" = "$argv[1]"');
  lines.push('end');
  lines.push('complete -c metaspn -e');
  for (const n of tree) {
    const cond = `-n ${fq(`__metaspn_path ${fq(n.path)}`)}`;
    for (const s of n.subcommands) lines.push(`complete -c metaspn ${cond} -f -a ${fq(s.name)} -d ${fq(s.description)}`);
    for (const o of n.options) {
      const flag = o.flag.startsWith('--') ? `-l ${o.flag.slice(2)}` : `-s ${o.flag.slice(1)}`;
      const value = !o.takesValue ? '' : o.choices ? ` -x -a ${fq(o.choices.join(' '))}` : o.kind === 'dir' ? ` -x -a ${fq('(__fish_complete_directories)')}` : o.kind === 'file' ? ' -r -F' : ' -x';
      lines.push(`complete -c metaspn ${cond} ${flag}${value} -d ${fq(o.description)}`);
    }
  }
  lines.push(`complete -c metaspn -n ${fq(`__metaspn_path ''`)} -l version -d 'print the version'`);
  return `${lines.join('\n')}\n`;
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script for bash, zsh or fish (commands, subcommands, options and their values)')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'fish']))
    .addHelpText(
      'after',
      '\nExamples:\n  $ eval "$(metaspn completion bash)"        # in ~/.bashrc\n  $ eval "$(metaspn completion zsh)"         # in ~/.zshrc\n  $ metaspn completion fish > ~/.config/fish/completions/metaspn.fish',
    )
    .action(async (shell: string) => {
      // Every command, whichever this command line loaded.
      const { buildProgram } = await import('../main.js');
      const tree = completionTree(await buildProgram());
      if (shell === 'bash') process.stdout.write(bashScript(tree));
      else if (shell === 'zsh') process.stdout.write(zshScript(tree));
      else if (shell === 'fish') process.stdout.write(fishScript(tree));
      else throw new UsageError(`unknown shell "${shell}": bash, zsh or fish`);
    });
}
