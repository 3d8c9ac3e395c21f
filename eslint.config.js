// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  {
    // Generated output, and scratch space (relay data, *.tmp.* files) that git ignores too.
    ignores: [
      '**/dist/',
      'docs/api/',
      '**/node_modules/',
      'bench/results/',
      'coverage/',
      '**/.eventsinks/',
      '**/*.tmp.*',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          allowDefaultProject: [
            '*.js',
            '*.mjs',
            'scripts/*.mjs',
            '.ci/*.mjs',
            'packages/*/ui/*.mjs',
            'packages/*/test/fixtures/*.mjs',
          ],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's describe/it return promises the runner itself tracks.
          allowForKnownSafeCalls: [
            { from: 'package', name: ['describe', 'it', 'test', 'suite'], package: 'node:test' },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Sinks return `void | Promise<void>` by contract: that union is the fast path.
      '@typescript-eslint/no-invalid-void-type': 'off',
      // Option hooks are declared as methods (bivariant, so a hook typed for a narrower event
      // still fits) and are always called unbound, as documented.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: globals.node },
  },
  {
    files: [
      '**/*.test.ts',
      'test/**',
      'packages/*/test/**',
      'bench/**',
      'examples/**',
      'scripts/**',
    ],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/unbound-method': 'off',
      // Sinks return `void | Promise<void>`; tests await such mixed arrays on purpose.
      '@typescript-eslint/await-thenable': 'off',
      '@typescript-eslint/no-empty-function': 'off',
    },
  },
);
