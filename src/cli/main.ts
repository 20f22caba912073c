/**
 * The `diffreg` command. User errors (DiffregError, and file-system failures such as a folder without
 * write permission) print one line and exit 1; anything else is a bug: one line and exit 2 (set
 * DIFFREG_DEBUG=1 for the stack).
 */
import { DiffregError } from '../util/errors.ts';
import { helpText, parse, type Command } from './args.ts';
import { benchCommand } from './commands/bench.ts';
import { demoCommand } from './commands/demo.ts';
import { matchCommand } from './commands/match.ts';
import { registerCommand } from './commands/register.ts';
import { trainCommand } from './commands/train.ts';
import { viewCommand } from './commands/view.ts';
import { systemError } from './outputs.ts';

const COMMANDS: Command[] = [
  matchCommand,
  registerCommand,
  viewCommand,
  benchCommand,
  trainCommand,
  demoCommand,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'diffreg — diffusion-model registration and point correspondence for 3D medical images',
    '',
    'usage: diffreg <command> [options]   (diffreg <command> --help for its options)',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 1 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command)
    throw new DiffregError(`unknown command "${name}" (commands: ${COMMANDS.map((c) => c.name).join(', ')})`);
  const { values, positionals } = parse(command, rest);
  if (values.help) {
    process.stdout.write(`${helpText(command)}\n`);
    return 0;
  }
  if (positionals.length > (command.positionals ?? 0))
    throw new DiffregError(`${command.name}: unexpected argument "${positionals[command.positionals ?? 0]}"`);
  return command.run(values, positionals);
}

export async function runCli(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (e) {
    const err = (systemError(e) ?? e) as Error;
    if (err instanceof DiffregError) {
      process.stderr.write(`diffreg: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`diffreg: internal error: ${err?.message ?? String(e)}\n`);
      if (process.env.DIFFREG_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
      process.exitCode = 2;
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runCli(process.argv.slice(2));
