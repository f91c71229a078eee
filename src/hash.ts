import { createHash } from 'node:crypto'

/** SHA-256 of `text`, in base64url (43 characters): short enough for any backend's key. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}
