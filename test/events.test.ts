import { afterEach, describe, expect, it, vi } from 'vitest'
import { CacheBackendError } from '../src/errors.js'
import { CacheEmitter } from '../src/events.js'

afterEach(() => {
  vi.restoreAllMocks()
})

describe('the error channel', () => {
  it("with a listener, every error reaches it with the operation and key", () => {
    const emitter = new CacheEmitter()
    const seen: string[] = []
    emitter.on('error', (error: Error, info: { op: string; key?: string }) => seen.push(`${info.op} ${info.key} ${error.message}`))
    emitter.emitError(new CacheBackendError('down'), { op: 'get', key: 'k' })
    emitter.emitError(new CacheBackendError('down'), { op: 'set', key: 'j' })
    expect(seen).toEqual(['get k down', 'set j down'])
  })

  it('without a listener, errors go to stderr at most once per interval and never throw', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const emitter = new CacheEmitter()
    for (let i = 0; i < 100; i++) emitter.emitError(new CacheBackendError('redis is down'), { op: 'get' })
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/redis is down.*cache\.on\('error'/)
  })

  it('warnings are written once per message', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const emitter = new CacheEmitter()
    emitter.warnOnce('a')
    emitter.warnOnce('a')
    emitter.warnOnce('b')
    expect(warn.mock.calls.map((c) => c[0])).toEqual(['cachekit: a', 'cachekit: b'])
  })
})
