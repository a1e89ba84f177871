/**
 * Process entry: argv → config → App; signals; exit codes.
 *
 * Exit codes: 0 after a clean stop (SIGINT/SIGTERM) or for -V/--help/-O; 1 when start-up fails
 * (a port in use, a bad address); 2 for a configuration error. Errors are one line without a
 * stack trace unless -D.
 */
import { parseArgs, HELP_TEXT } from './cli/args';
import { loadConfig } from './cli/load';
import { ConfigError } from './core/errors';
import { createLogger } from './observe/logger';
import { App } from './app/app';
import { DEFAULTS } from './core/config';
import { runDemo } from './demo';
import type { ApiServer } from './api/server';
import { installReloadTriggers, reloadFromSources, savableFile } from './cli/reload';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const pkg = require('../package.json') as { version: string };

function fail(err: unknown, debug: boolean, code: number): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`burrow: ${msg}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(code);
}

/** BURROW_SHUTDOWN_GRACE_MS (milliseconds, 0 or more), else the default. */
function shutdownGraceMs(logger: { warn(msg: string): void }): number {
  const text = process.env.BURROW_SHUTDOWN_GRACE_MS;
  if (text === undefined || text.trim() === '') return DEFAULTS.shutdownGraceMs;
  const ms = Number(text);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  logger.warn(`BURROW_SHUTDOWN_GRACE_MS=${text}: expected milliseconds (0 or more); using ${DEFAULTS.shutdownGraceMs}`);
  return DEFAULTS.shutdownGraceMs;
}

export async function main(argv: string[]): Promise<void> {
  if (argv.length === 1 && argv[0] === '--demo') {
    await runDemo();
    return;
  }
  let args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    fail(err, false, 2);
  }
  const debug = args.logLevel !== undefined;
  if (args.help) {
    process.stdout.write(HELP_TEXT.endsWith('\n') ? HELP_TEXT : HELP_TEXT + '\n');
    return;
  }
  if (args.version) {
    process.stdout.write(`burrow ${pkg.version} (node ${process.version} ${process.platform}/${process.arch})\n`);
    return;
  }
  const cliInput = {
    listen: args.listen,
    forward: args.forward,
    logLevel: args.logLevel,
    api: args.api,
    metrics: args.metrics,
  };
  let loaded;
  try {
    loaded = await loadConfig(args.configs, cliInput);
  } catch (err) {
    fail(err, debug, err instanceof ConfigError ? 2 : 1);
  }
  if (args.output) {
    // Loaded on demand: printing the config needs the YAML writer, running does not.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { renderConfig } = require('./config/output') as typeof import('./config/output');
    process.stdout.write(renderConfig(loaded.config, args.output));
    return;
  }
  const logCfg = { ...(loaded.config.log ?? {}) };
  if (args.logLevel) logCfg.level = args.logLevel;
  const logger = createLogger(logCfg);
  for (const w of loaded.warnings) logger.warn(w);
  if (!loaded.config.services?.length) {
    process.stderr.write(`burrow: nothing to run (no services). Try: burrow --help\n`);
    process.exit(2);
  }
  let app: App;
  let api: ApiServer | undefined;
  const sources = { configs: args.configs, cli: cliInput, graceMs: shutdownGraceMs(logger) };
  try {
    const announced = new Set<string>();
    app = new App(loaded.config, logger, {
      onBound: (service, info) => {
        // A plain line telling the user where the service is reachable (public mode servers).
        if (!info.publicHost) return;
        const key = `${service}|${info.publicHost}`;
        if (announced.has(key)) return;
        announced.add(key);
        const line =
          info.network === 'udp'
            ? `${service}: UDP service reachable with: burrow -L udp://:1053/${info.publicHost} -F <this -F>`
            : `${service}: public URL: ${info.https ? 'https' : 'http'}://${info.publicHost}  (TCP: burrow -L tcp://:2222/${info.publicHost} -F <this -F>)`;
        process.stdout.write(line + '\n');
      },
    });
    await app.start();
    if (loaded.config.api) {
      // Loaded on demand: a process without -api does not need the API's code.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { ApiServer } = require('./api/server') as typeof import('./api/server');
      const started = app;
      api = new ApiServer(loaded.config.api, app, logger, {
        reload: () => reloadFromSources(started, sources, 'POST /config/reload'),
        configFile: savableFile(args.configs, cliInput),
        graceMs: sources.graceMs,
      });
      try {
        await api.listen();
      } catch (err) {
        await app.stop(0);
        throw new Error(`api ${loaded.config.api.addr}: ${(err as Error).message}`, { cause: err });
      }
    }
  } catch (err) {
    fail(err, debug, err instanceof ConfigError ? 2 : 1);
  }
  const removeTriggers = installReloadTriggers(app, sources, args.reload);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    removeTriggers();
    const graceMs = shutdownGraceMs(logger);
    logger.info(`${signal}: shutting down (grace ${graceMs} ms)`);
    Promise.resolve(api?.close())
      .then(() => app.stop(graceMs))
      .then(
        () => process.exit(0),
        (err: unknown) => fail(err, debug, 1),
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
