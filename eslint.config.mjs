// Lint: eslint's and typescript-eslint's recommended rules over src/, test/, bench/ and scripts/.
// Rules are turned off only where they fight a deliberate choice of this code base; each says why.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // The protocol parsers (HTTP heads, URLs, ingress names) test for control bytes on
      // purpose: a regular expression over \x00-\x1f is how they refuse them.
      'no-control-regex': 'off',
      // A variable assigned once after the closures that read it are made (a timer handle, the
      // app built after its metrics hooks), and destructuring where only some names change.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true, destructuring: 'all' }],
      // Unused names are errors, except ones written `_name` on purpose (a parameter kept for
      // an interface's shape, a value destructured away).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // CommonJS files (a probe preloaded with node -r) have only require().
    files: ['**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
