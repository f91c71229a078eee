/**
 * Consistent hashing: each server owns 160 points on a 32-bit circle (from MD5s of its name), and a key
 * goes to the first point at or after its own hash. Adding or removing one server of n moves about 1/n of
 * the keys, where `hash % n` would move nearly all of them. Every process that lists the same servers,
 * in any order, places every key on the same server.
 */
import { createHash } from 'node:crypto'

const POINTS_PER_SERVER = 160

function md5(text: string): Buffer {
  return createHash('md5').update(text, 'utf8').digest()
}

export class Ring {
  readonly #points: Uint32Array
  readonly #owners: Uint16Array

  constructor(readonly servers: readonly string[]) {
    const points: { point: number; owner: number }[] = []
    servers.forEach((server, owner) => {
      for (let i = 0; i < POINTS_PER_SERVER / 4; i++) {
        const digest = md5(`${server}-${i}`)
        for (let j = 0; j < 4; j++) points.push({ point: digest.readUInt32LE(j * 4), owner })
      }
    })
    // Ties (astronomically rare) are broken by the server's name, so that order in the list never matters.
    points.sort((a, b) => a.point - b.point || (servers[a.owner]! < servers[b.owner]! ? -1 : 1))
    this.#points = Uint32Array.from(points, (p) => p.point)
    this.#owners = Uint16Array.from(points, (p) => p.owner)
  }

  /** The index (in `servers`) of the server that holds `key`. */
  owner(key: string): number {
    if (this.servers.length === 1) return 0
    const h = md5(key).readUInt32LE(0)
    const points = this.#points
    let lo = 0
    let hi = points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid]! < h) lo = mid + 1
      else hi = mid
    }
    return this.#owners[lo === points.length ? 0 : lo]!
  }
}
