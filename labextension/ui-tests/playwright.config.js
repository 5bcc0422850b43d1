/**
 * Playwright configuration: Galata's defaults, Debian's Chromium (Playwright cannot download
 * its own browsers here), one worker, no video (it needs Playwright's own ffmpeg).
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.KYTE_UI_PORT || '8891';
const baseURL = `http://127.0.0.1:${port}`;

module.exports = {
  ...baseConfig,
  workers: 1,
  retries: process.env.CI ? 1 : 0,
  timeout: 120 * 1000,
  expect: {
    ...(baseConfig.expect || {}),
    timeout: 30 * 1000,
    toHaveScreenshot: { maxDiffPixelRatio: 0.01 }
  },
  reporter: [[process.env.CI ? 'line' : 'list'], ['html', { open: 'never' }]],
  use: {
    ...baseConfig.use,
    baseURL,
    video: 'off',
    trace: 'retain-on-failure',
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run'
      ]
    }
  },
  webServer: {
    command: 'jupyter lab --config jupyter_server_test_config.py',
    url: `${baseURL}/lab`,
    timeout: 120 * 1000,
    // Never test against somebody else's server by accident (KYTE_UI_REUSE=1 to opt in).
    reuseExistingServer: process.env.KYTE_UI_REUSE === '1'
  }
};
