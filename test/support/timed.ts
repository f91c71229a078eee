/** How long `work` takes, and what it gave or threw: for the tests that bound how long a call may take. */
export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = performance.now()
  try {
    const value = await work()
    return { ms: performance.now() - t0, value }
  } catch (error) {
    return { ms: performance.now() - t0, error }
  }
}
