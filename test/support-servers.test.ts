/** The policy of test/support/servers.ts: a missing server is one loud line outside CI, a failure under CI. */
import { afterEach, describe, expect, it, vi } from 'vitest'

/** servers.ts as loaded with CI=`ci` (it reads CI once, when loaded). */
async function loadWith(ci: string | undefined): Promise<typeof import('./support/servers.js')> {
  vi.resetModules()
  vi.stubEnv('CI', ci)
  return import('./support/servers.js')
}

afterEach(() => {
  vi.unstubAllEnvs()
  vi.restoreAllMocks()
})

describe('serverOrSkip', () => {
  it('resolves true when the probe finds it, and prints nothing', async () => {
    const { serverOrSkip } = await loadWith('true')
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    expect(await serverOrSkip('the x tests', 'X at x://here', () => true, 'start X')).toBe(true)
    expect(await serverOrSkip('the x tests', 'X at x://here', async () => true, 'start X')).toBe(true)
    expect(warn).not.toHaveBeenCalled()
  })

  for (const ci of [undefined, '', 'false']) {
    it(`with CI=${JSON.stringify(ci)}: resolves false after one loud line naming what is skipped, why and how to run it, once per what`, async () => {
      const { inCI, serverOrSkip } = await loadWith(ci)
      expect(inCI).toBe(false)
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
      expect(await serverOrSkip('the x tests', 'X at x://here', () => false, 'start X')).toBe(false)
      expect(await serverOrSkip('the x tests', 'X at x://here', () => false, 'start X')).toBe(false)
      expect(await serverOrSkip('the y tests', 'Y', async () => 'y is not installed', 'install y')).toBe(false)
      expect(warn.mock.calls.map(([line]) => String(line).trim())).toEqual([
        '!!! SKIPPED the x tests: no X at x://here. To run them, start X. Under CI=true this is a failure.',
        '!!! SKIPPED the y tests: y is not installed. To run them, install y. Under CI=true this is a failure.',
      ])
    })
  }

  it('under CI=true: throws, naming what cannot run and why, and prints nothing', async () => {
    const { inCI, serverOrSkip } = await loadWith('true')
    expect(inCI).toBe(true)
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    await expect(serverOrSkip('the x tests', 'X at x://here', () => false, 'start X')).rejects.toThrow(
      'the x tests cannot run: no X at x://here, and CI=true requires X at x://here (.ci/run provides it). To run them, start X.',
    )
    await expect(serverOrSkip('the y tests', 'Y', () => 'y is not installed', 'install y')).rejects.toThrow(/^the y tests cannot run: y is not installed, and CI=true requires Y/)
    expect(warn).not.toHaveBeenCalled()
  })
})
