import { createHash } from 'node:crypto'

/** A Lua script and its SHA1, sent with EVALSHA and loaded with EVAL the first time a server lacks it. */
export interface Script {
  readonly lua: string
  readonly sha: string
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

/** The largest safe integer: a result beyond it is refused, as `addToPayload` refuses it in memory. */
const MAX_SAFE = '9007199254740991'

/**
 * `increment`: INCRBY, and the TTL only for a key that did not exist, in one atomic step. `PEXPIRE ... NX`
 * cannot do this: it would also give an expiry to an existing key stored without one. INCRBY keeps the
 * value as it was on a non-integer ("not an integer" error); a result beyond the safe integer range is
 * undone and reported as `CACHEKIT_RANGE <previous value>`.
 *
 * KEYS[1] the key; ARGV[1] the delta; ARGV[2] the TTL in ms for a new key, `0` for none.
 */
export const INCREMENT = script(`
local existed = redis.call('EXISTS', KEYS[1])
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n > ${MAX_SAFE} or n < -${MAX_SAFE} then
  if existed == 1 then
    redis.call('DECRBY', KEYS[1], ARGV[1])
    return redis.error_reply('CACHEKIT_RANGE ' .. redis.call('GET', KEYS[1]))
  end
  redis.call('DEL', KEYS[1])
  return redis.error_reply('CACHEKIT_RANGE 0')
end
if existed == 0 and ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
`)

/** `touch` to "never expire": PERSIST answers 0 for a live key without a TTL, so EXISTS decides. */
export const PERSIST = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1
`)

/** `deleteIfEquals`: compare and delete in one atomic step, so a lease is released only by its holder. */
export const DELETE_IF_EQUALS = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
