/**
 * Test support for sessions: a browser's cookie jar over real HTTP (fetch, one fresh connection per request),
 * and worker processes of test/fixtures/session-server.ts sharing one backend.
 */
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startPortsChild, stopChildren } from './port-children.js'

/** One cookie as a browser keeps it: its value, and the attributes it came with. */
export interface StoredCookie {
  value: string
  attributes: string[]
}

/** The cookies of one browser: what `Set-Cookie` stored, sent back in `Cookie`. */
export class CookieJar {
  readonly cookies = new Map<string, StoredCookie>()

  /** Keep (or, with `Max-Age=0`, drop) what a response set. */
  take(setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim())
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq)
      const value = pair.slice(eq + 1)
      if (attributes.some((a) => /^max-age=0$/i.test(a)) || value === '') this.cookies.delete(name)
      else this.cookies.set(name, { value, attributes })
    }
  }

  header(): string {
    return [...this.cookies].map(([name, c]) => `${name}=${c.value}`).join('; ')
  }

  get(name: string): string | undefined {
    return this.cookies.get(name)?.value
  }

  set(name: string, value: string): void {
    this.cookies.set(name, { value, attributes: [] })
  }

  /** Another jar holding the same cookies: another tab of the same browser. */
  copy(): CookieJar {
    const jar = new CookieJar()
    for (const [name, cookie] of this.cookies) jar.cookies.set(name, cookie)
    return jar
  }
}

export interface Answer<T = Record<string, unknown>> {
  status: number
  body: T
  /** The response's `Set-Cookie` lines. */
  setCookies: string[]
}

/**
 * A request as a browser with `jar` sends it, on a fresh connection (so that requests to one port are not
 * tied to one socket). A hang fails after `timeout` ms with an error saying so, instead of the test's timeout.
 */
export async function send<T = Record<string, unknown>>(
  url: string,
  jar: CookieJar | undefined,
  init: { method?: string; headers?: Record<string, string>; timeout?: number } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { connection: 'close', ...init.headers }
  const cookie = jar?.header()
  if (cookie) headers.cookie = cookie
  const res = await fetch(url, { method: init.method ?? 'GET', headers, redirect: 'manual', signal: AbortSignal.timeout(init.timeout ?? 20_000) })
  const setCookies = res.headers.getSetCookie()
  jar?.take(setCookies)
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: body as T, setCookies }
}

/** The two apps of one worker process. */
export interface SessionWorker {
  express: string
  hono: string
  process: ChildProcess
}

const FIXTURE = fileURLToPath(new URL('../fixtures/session-server.ts', import.meta.url))

/** Start `count` workers with `env` added; resolves once every one listens. */
export async function startWorkers(count: number, env: Record<string, string>): Promise<{ workers: SessionWorker[]; stop: () => Promise<void> }> {
  const started = Array.from({ length: count }, () => startPortsChild(FIXTURE, env, 'a session worker'))
  const stop = () => stopChildren(started.map(({ child }) => child))
  try {
    const workers = await Promise.all(
      started.map(async ({ child, ports }) => {
        const { express, hono } = await ports
        return { express: `http://127.0.0.1:${express}`, hono: `http://127.0.0.1:${hono}`, process: child }
      }),
    )
    return { workers, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
