/**
 * Test servers in child processes of their own: a fixture that prints `PORTS {"name": port, ...}` once it
 * listens (test/fixtures/http-server.ts, session-server.ts), started with `env` added, and stopped.
 */
import { spawn, type ChildProcess } from 'node:child_process'

/**
 * Start `fixture` under tsx with `env` added; `ports` resolves with what it printed, or rejects with its
 * output if it exits first (`what` names it in the message).
 */
export function startPortsChild(fixture: string, env: Record<string, string>, what: string): { child: ChildProcess; ports: Promise<Record<string, number>> } {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const ports = new Promise<Record<string, number>>((resolve, reject) => {
    let out = ''
    const onData = (chunk: Buffer) => {
      out += chunk.toString('utf8')
      const printed = /^PORTS (\{.*\})$/m.exec(out)?.[1]
      if (printed !== undefined) resolve(JSON.parse(printed) as Record<string, number>)
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code, signal) => reject(new Error(`${what} exited (${signal ?? code}) before listening:\n${out}`)))
  })
  return { child, ports }
}

/** Stop every child: SIGTERM, then SIGKILL after 3 s; resolves once all have exited. */
export async function stopChildren(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve()
          child.once('exit', () => resolve())
          child.kill('SIGTERM')
          setTimeout(() => child.kill('SIGKILL'), 3000).unref()
        }),
    ),
  )
}
