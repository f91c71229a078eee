type Reject = (error: Error) => void

/** The commands sent during one sweep period: their rejects (until each settles) and how many are pending. */
export class Generation {
  readonly rejects: (Reject | undefined)[] = []
  pending = 0

  /** @param born the sweep during which its commands were sent. */
  constructor(readonly born: number) {}

  /** Returns the slot to pass to {@link settle}. */
  add(reject: Reject): number {
    this.pending++
    return this.rejects.push(reject) - 1
  }

  settle(slot: number): void {
    if (this.rejects[slot] === undefined) return
    this.rejects[slot] = undefined
    this.pending--
  }
}

/** Sweep periods per timeout: a command times out between `ms` and `ms * (1 + 1/SWEEPS)` after it was sent. */
const SWEEPS = 8

/**
 * Command timeouts without a timer, or even a clock reading, per command: a setTimeout/clearTimeout pair per
 * command showed up in profiles at 64 in flight, and so did `performance.now()`. Commands are grouped in
 * generations, one per sweep period of `ms / SWEEPS`; one interval runs while any command is pending, starts
 * a new generation each period, and rejects what is still pending in generations older than the timeout.
 */
export class Deadlines {
  /** Generations with commands that may be pending, oldest first; the last is the current one. */
  readonly #generations: Generation[] = []
  /** Sweeps since the interval started: the age of a generation, counted in periods. */
  #sweep = 0
  #timer: NodeJS.Timeout | undefined
  readonly #period: number
  readonly #error: () => Error

  constructor(ms: number, error: () => Error) {
    this.#period = Math.max(1, Math.ceil(ms / SWEEPS))
    this.#error = error
  }

  /** The generation a command sent now belongs to; starts the sweep when it is not running. */
  current(): Generation {
    if (this.#timer === undefined) {
      // Unref'd: a command waiting for its reply keeps the process alive through its socket; the sweep
      // alone must not hold a closed cache's process open.
      this.#timer = setInterval(this.#tick, this.#period).unref()
      this.#sweep = 0
      this.#start()
    }
    return this.#generations[this.#generations.length - 1]!
  }

  /** Commands kept (pending or in a generation not yet dropped), for tests. */
  get size(): number {
    return this.#generations.reduce((n, g) => n + g.pending, 0)
  }

  /** Stops the sweep (on close; commands still pending are failed by the driver's close). */
  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#generations.length = 0
  }

  #start(): void {
    this.#generations.push(new Generation(this.#sweep))
  }

  readonly #tick = (): void => {
    this.#sweep++
    const generations = this.#generations
    // A generation born at sweep b holds commands sent during period b; after SWEEPS + 1 more ticks every
    // one of them has waited at least SWEEPS periods, i.e. the timeout.
    let kept = 0
    for (const g of generations) {
      if (g.pending > 0 && this.#sweep - g.born > SWEEPS) {
        for (const reject of g.rejects) reject?.(this.#error())
        g.rejects.length = 0
        g.pending = 0
      }
      if (g.pending > 0) generations[kept++] = g
    }
    generations.length = kept
    if (kept === 0) {
      // Nothing pending: stop until the next command, rather than waking up for nothing.
      clearInterval(this.#timer)
      this.#timer = undefined
      return
    }
    this.#start()
  }
}
