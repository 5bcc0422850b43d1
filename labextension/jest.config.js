/**
 * Unit tests of the graph model, layout, log text and messages (TypeScript, run in Node with
 * ts-jest). JupyterLab's packages ship ES modules: the few a test imports
 * (@jupyterlab/translation and what it imports) are compiled to CommonJS too.
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testRegex: 'src/.*/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }],
    '^.+\\.js$': [
      'ts-jest',
      {
        tsconfig: {
          allowJs: true,
          module: 'commonjs',
          target: 'ES2020',
          esModuleInterop: true
        },
        isolatedModules: true
      }
    ]
  },
  transformIgnorePatterns: [
    '/node_modules/(?!(@jupyterlab|@jupyter|lib0|y-protocols|yjs)/)'
  ],
  collectCoverageFrom: ['src/**/*.ts', '!src/**/*.d.ts'],
  coverageReporters: ['text']
};
