type Reject = (error: Error) => void

/**
 * Commands that time out together: those sent during one sweep period, or those given a shorter timeout
 * (what was left of their call's deadline) that ends at the same sweep. Their rejects (until each settles)
 * and how many are pending.
 */
export class Generation {
  readonly rejects: (Reject | undefined)[] = []
  pending = 0

  /**
   * @param expires the sweep at which what is still pending is rejected.
   * @param short its commands were given less than the whole timeout.
   */
  constructor(
    readonly expires: number,
    readonly short = false,
  ) {}

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
 * A command given a shorter timeout (the rest of its call's deadline) joins a generation that expires
 * sooner, at the same granularity; the plain path is untouched.
 */
export class Deadlines {
  /** Generations with commands that may be pending; the current one among them. */
  readonly #generations: Generation[] = []
  /** The generation of commands sent during this period with the whole timeout. */
  #current: Generation | undefined
  /** Sweeps since the interval started: the age of a generation, counted in periods. */
  #sweep = 0
  #timer: NodeJS.Timeout | undefined
  readonly #ms: number
  readonly #period: number
  readonly #error: (short: boolean) => Error

  constructor(ms: number, error: (short: boolean) => Error) {
    this.#ms = ms
    this.#period = Math.max(1, Math.ceil(ms / SWEEPS))
    this.#error = error
  }

  /**
   * The generation a command sent now belongs to; starts the sweep when it is not running.
   * @param ms a timeout shorter than the whole one, if the command has less time (rounded up to a period).
   */
  current(ms?: number): Generation {
    if (this.#timer === undefined) {
      // Unref'd: a command waiting for its reply keeps the process alive through its socket; the sweep
      // alone must not hold a closed cache's process open.
      this.#timer = setInterval(this.#tick, this.#period).unref()
      this.#sweep = 0
      this.#start()
    }
    const current = this.#current!
    if (ms === undefined || ms >= this.#ms) return current
    return this.#sooner(ms, current)
  }

  /** A generation for commands with `ms` left: rejected after at least `ms`, and less than two periods more. */
  #sooner(ms: number, current: Generation): Generation {
    const expires = this.#sweep + Math.max(1, Math.ceil(ms / this.#period)) + 1
    if (expires >= current.expires) return current
    for (const g of this.#generations) if (g.short && g.expires === expires) return g
    const g = new Generation(expires, true)
    this.#generations.push(g)
    return g
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
    this.#current = undefined
  }

  #start(): void {
    // Commands sent during period b: after SWEEPS + 1 more ticks every one of them has waited at least
    // SWEEPS periods, i.e. the timeout.
    this.#current = new Generation(this.#sweep + SWEEPS + 1)
    this.#generations.push(this.#current)
  }

  readonly #tick = (): void => {
    this.#sweep++
    const generations = this.#generations
    let kept = 0
    for (const g of generations) {
      if (g.pending > 0 && this.#sweep >= g.expires) {
        for (const reject of g.rejects) reject?.(this.#error(g.short))
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
