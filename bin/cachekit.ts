#!/usr/bin/env node
/**
 * `cachekit`: look inside a cache from the shell. Config from `--url`, else `CACHE_*` variables, else the
 * embedded default. Exit codes: 0 success, 1 a miss (`get`, `ttl`) or a failed race, 2 an error (its message
 * on stderr).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { CacheError } from '../src/errors.js'
import { COMMANDS, findCommand, GLOBAL_OPTIONS, type Command } from './commands.js'
import { backendList } from './open.js'
import { withoutSecrets } from './output.js'

const EXIT_ERROR = 2

type Options = NonNullable<ParseArgsConfig['options']>

function globalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.usage.length))
  return [
    'Usage: cachekit <command> [options]',
    '',
    'Look inside a cachekit cache: the one configured by --url, else by CACHE_* variables',
    '(CACHE_URL, CACHE_TYPE, ...), else the embedded default.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    'Options of every command:',
    GLOBAL_HELP,
    '',
    `Backends (and their URL schemes): ${backendList()}.`,
    '',
    'Exit codes: 0 success, 1 a miss (get, ttl) or a failed race, 2 an error (message on stderr).',
    'Run `cachekit <command> --help` for a command\'s own options.',
  ].join('\n')
}

const GLOBAL_HELP = [
  '  --url <url>       the cache, e.g. sqlite:./.cache/cachekit.sqlite, file:./cache, redis://127.0.0.1:6379',
  '  --prefix <text>   key prefix (default: CACHE_KEY_PREFIX or none); keys are shown without it',
  '  --json            one JSON document on stdout instead of text',
  '  --timeout <d>     give up after this long (default 30s)',
  '  -h, --help        this help',
].join('\n')

function commandHelp(c: Command): string {
  return [`Usage: cachekit ${c.usage}`, '', c.description, ...(c.optionHelp.length > 0 ? ['', 'Options:', ...c.optionHelp] : []), '', 'Options of every command:', GLOBAL_HELP].join('\n')
}

function fail(message: string): number {
  process.stderr.write(`cachekit: ${withoutSecrets(message)}\n`)
  return EXIT_ERROR
}

async function main(argv: string[]): Promise<number> {
  const every: Options = { ...GLOBAL_OPTIONS }
  for (const c of COMMANDS) Object.assign(every, c.options)
  // A first loose pass finds the command wherever the global options stand.
  const loose = parseArgs({ args: argv, options: every, allowPositionals: true, strict: false })
  const name = loose.positionals[0]
  if (name === undefined || name === 'help') {
    const topic = name === 'help' ? loose.positionals[1] : undefined
    const c = topic === undefined ? undefined : findCommand(topic)
    if (topic !== undefined && c === undefined) return fail(`unknown command ${JSON.stringify(topic)}. Run \`cachekit --help\` for the list.`)
    process.stdout.write(`${c === undefined ? globalHelp() : commandHelp(c)}\n`)
    return name === undefined && loose.values.help !== true ? EXIT_ERROR : 0
  }
  const command = findCommand(name)
  if (command === undefined) return fail(`unknown command ${JSON.stringify(name)}. Commands: ${COMMANDS.map((c) => c.name).join(', ')}.`)

  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true })
  } catch (error) {
    // Node's own text runs on with advice about '--' that ends mid-quote; its first sentence says it all.
    const reason = ((error as Error).message.split(/\.\s/)[0] ?? 'bad arguments').replace(/\.$/, '')
    return fail(`${command.name}: ${reason}. Run \`cachekit ${command.name} --help\`.`)
  }
  if (parsed.values.help === true) {
    process.stdout.write(`${commandHelp(command)}\n`)
    return 0
  }
  const args = parsed.positionals.slice(1)
  if (args.length < command.args[0] || args.length > command.args[1]) {
    return fail(`${command.name}: expected ${command.args[0] === command.args[1] ? command.args[0] : `${command.args[0]} to ${command.args[1]}`} argument(s), got ${args.length}. Usage: cachekit ${command.usage}`)
  }
  return command.run({ args, values: parsed.values as Record<string, string | boolean | undefined> })
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = error instanceof CacheError || error instanceof Error ? error.message : String(error)
    process.exit(fail(message))
  },
)
