/** How config messages show a value: never a credential. */
import { redactText, redactUrl } from '../redact.js'

/** A value for a message: JSON, with any URL's credentials hidden (a string is taken as a whole URL). */
export function showValue(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(redactUrl(value)) : redactText(JSON.stringify(value) ?? typeof value)
}
