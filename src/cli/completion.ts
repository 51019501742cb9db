/**
 * `agentorch completion bash|zsh|fish`: shell completion scripts, generated from the
 * command tree itself (subcommands, their aliases and flags), so they never fall behind
 * the commands. Commander has no completion of its own. The scripts complete words only
 * (commands, flags, the formats of -o, files after -f); ids are not looked up.
 */
import type { Command, Option } from "commander";
import { usageError } from "./errors.js";

/** One command of the tree, as the scripts need it. */
export interface CompletionNode {
  /** "agentorch agents register". */
  path: string;
  /** The name and aliases it is typed as. */
  names: string[];
  description: string;
  subcommands: CompletionNode[];
  /** Its own flags (with -h/--help), and for the root the global ones. */
  flags: { short?: string; long?: string; takesValue: boolean; description: string }[];
}

const FORMATS = "table wide json yaml";

function flagsOf(options: readonly Option[]): CompletionNode["flags"] {
  return [
    ...options.map((o) => ({ short: o.short, long: o.long, takesValue: o.required || o.optional, description: o.description })),
    { short: "-h", long: "--help", takesValue: false, description: "show help for a command" },
  ];
}

/** The tree of cmd and its subcommands (without `help`). */
export function completionTree(cmd: Command, parentPath = ""): CompletionNode {
  const path = parentPath === "" ? cmd.name() : `${parentPath} ${cmd.name()}`;
  return {
    path,
    names: [cmd.name(), ...cmd.aliases()],
    description: cmd.description(),
    subcommands: cmd.commands.filter((c) => c.name() !== "help").map((c) => completionTree(c, path)),
    flags: flagsOf(cmd.options),
  };
}

function walk(node: CompletionNode): CompletionNode[] {
  return [node, ...node.subcommands.flatMap(walk)];
}

function words(list: (string | undefined)[]): string {
  return list.filter((w): w is string => w !== undefined).join(" ");
}

/** Flags that take a value, anywhere in the tree: the word after one is a value, not a command. */
function valueFlags(root: CompletionNode): string[] {
  return [...new Set(walk(root).flatMap((n) => n.flags.filter((f) => f.takesValue).flatMap((f) => [f.short, f.long])))].filter(
    (f): f is string => f !== undefined,
  );
}

/**
 * The body both bash and zsh run (their arrays differ, so the caller sets `ws` to the
 * words before the current one, command name excluded): finds the command the words
 * name, in `cmd`, skipping the values of flags.
 */
function walkBody(root: CompletionNode): string {
  const transitions = walk(root).flatMap((n) =>
    n.subcommands.map((s) => `      ${s.names.map((name) => `"${n.path} ${name}"`).join("|")}) cmd="${s.path}" ;;`),
  );
  return `  local cmd="${root.path}" skip=0 w
  for w in "\${ws[@]}"; do
    if [[ $skip == 1 ]]; then skip=0; continue; fi
    [[ $w == -- ]] && return 0
    case " ${valueFlags(root).join(" ")} " in *" $w "*) skip=1; continue ;; esac
    case "$cmd $w" in
${transitions.join("\n")}
    esac
  done
  local subs="" flags=""
  case $cmd in
${walk(root)
  .map((n) => `    "${n.path}") subs="${words(n.subcommands.map((s) => s.names[0]))}"; flags="${words(n.flags.flatMap((f) => [f.long, f.short]))}" ;;`)
  .join("\n")}
  esac
  [[ $cmd != "${root.path}" ]] && flags="$flags ${words(root.flags.filter((f) => f.long !== "--help" && f.long !== "--version").flatMap((f) => [f.long, f.short]))}"`;
}

/** The bash script: `source <(agentorch completion bash)`. */
export function bashScript(root: CompletionNode): string {
  const fn = `_${root.path.replace(/\W/g, "_")}`;
  return `# bash completion for ${root.path}: source <(${root.path} completion bash), or save it in
# /etc/bash_completion.d/${root.path} (or ~/.local/share/bash-completion/completions/${root.path})
${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local ws=("\${COMP_WORDS[@]:1:COMP_CWORD-1}")
  COMPREPLY=()
  case $prev in
    -o|--output) COMPREPLY=($(compgen -W "${FORMATS}" -- "$cur")); return 0 ;;
    -f|--file) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
  esac
${walkBody(root)}
  if [[ $skip == 1 ]]; then return 0; fi
  if [[ $cur == -* || -z $subs ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  fi
}
complete -F ${fn} ${root.path}
`;
}

/** The zsh script: `source <(agentorch completion zsh)` after compinit, or saved as _agentorch on $fpath. */
export function zshScript(root: CompletionNode): string {
  const fn = `_${root.path.replace(/\W/g, "_")}`;
  return `#compdef ${root.path}
# zsh completion for ${root.path}: source <(${root.path} completion zsh) after compinit, or save it
# as ${fn} in a directory on $fpath
${fn}() {
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]}
  local -a ws
  ws=("\${(@)words[2,CURRENT-1]}")
  case $prev in
    -o|--output) compadd -- ${FORMATS}; return 0 ;;
    -f|--file) _files; return 0 ;;
  esac
${walkBody(root)}
  if [[ $skip == 1 ]]; then return 0; fi
  if [[ $cur == -* || -z $subs ]]; then
    compadd -- \${=flags}
  else
    compadd -- \${=subs}
  fi
}
if (( $+functions[compdef] )); then compdef ${fn} ${root.path}; fi
`;
}

function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** The fish script: `agentorch completion fish | source`, or saved in ~/.config/fish/completions/agentorch.fish. */
export function fishScript(root: CompletionNode): string {
  const c = root.path;
  const lines = [`# fish completion for ${c}: ${c} completion fish | source`, `complete -c ${c} -f`];
  const flagLine = (cond: string, f: CompletionNode["flags"][number]) =>
    `complete -c ${c}${cond}${f.short ? ` -s ${f.short.slice(1)}` : ""}${f.long ? ` -l ${f.long.slice(2)}` : ""}${f.takesValue ? " -r" : ""} -d ${fishQuote(f.description)}`;
  for (const f of root.flags) lines.push(flagLine("", f));
  lines.push(`complete -c ${c} -n '__fish_seen_subcommand_from -o --output' -a ${fishQuote(FORMATS)}`);
  const allSubNames = (n: CompletionNode) => n.subcommands.flatMap((s) => s.names).join(" ");
  for (const group of root.subcommands) {
    lines.push(`complete -c ${c} -n '__fish_use_subcommand' -a ${group.names[0]} -d ${fishQuote(group.description)}`);
    const inGroup = `__fish_seen_subcommand_from ${group.names.join(" ")}`;
    if (group.subcommands.length === 0) {
      for (const f of group.flags) lines.push(flagLine(` -n '${inGroup}'`, f));
      continue;
    }
    for (const sub of group.subcommands) {
      lines.push(`complete -c ${c} -n '${inGroup}; and not __fish_seen_subcommand_from ${allSubNames(group)}' -a ${sub.names[0]} -d ${fishQuote(sub.description)}`);
      for (const f of sub.flags) lines.push(flagLine(` -n '${inGroup}; and __fish_seen_subcommand_from ${sub.names.join(" ")}'`, f));
    }
  }
  return lines.join("\n") + "\n";
}

const SCRIPTS: Record<string, (root: CompletionNode) => string> = { bash: bashScript, zsh: zshScript, fish: fishScript };

/** Adds `completion` to the root. */
export function addCompletionCommand(root: Command): void {
  root
    .command("completion")
    .description("print a shell completion script: bash, zsh or fish")
    .argument("<shell>", "bash, zsh or fish")
    .addHelpText(
      "after",
      `
Install:
  bash   source <(agentorch completion bash)               (e.g. in ~/.bashrc)
  zsh    source <(agentorch completion zsh)                (in ~/.zshrc, after compinit)
  fish   agentorch completion fish > ~/.config/fish/completions/agentorch.fish`,
    )
    .action((shell: string) => {
      const script = SCRIPTS[shell];
      if (!script) throw usageError(`completion ${shell}: expected bash, zsh or fish`);
      process.stdout.write(script(completionTree(root)));
    });
}
