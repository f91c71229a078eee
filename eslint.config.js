import js from '@eslint/js'
import tseslint from 'typescript-eslint'

// The layering (see test/layering.test.ts, which also catches dynamic imports and cycles): adapters import
// only the core's leaf modules, and the core reaches adapters only through the list in adapters/index.ts.
const CORE_ONLY = '^(\\.\\./)+src/(config|registry|cache|singleton|index|getorset|lease|memoize|http|testing|to-keyv-store)(\\.js$|/)'
const ADAPTER_INTERNALS = '^(\\.\\./)+adapters/(?!index\\.js$)'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.cache/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['adapters/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{
          regex: CORE_ONLY,
          message: 'An adapter imports only the leaf modules of the core (adapter, errors, duration, size, redact, url, definition, ...), never the config, registry or cache.',
        }],
      }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{
          regex: ADAPTER_INTERNALS,
          message: 'The core knows adapters only through the list in adapters/index.ts.',
        }],
      }],
    },
  },
)
