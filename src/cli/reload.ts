/**
 * Reloading a running process from its sources: SIGHUP, the `-R` period and `POST
 * /config/reload` read the -C sources and the flags again (as at start) and hand the result to
 * the app, which applies it as a difference (app/reload.ts). A source that cannot be read or a
 * config that does not verify refuses the reload like a service that cannot start.
 */
import type { App, ReloadResult } from '../app/app';
import { parseGoDurationMs } from '../core/metadata';
import { loadConfig, type CliConfigInput } from './load';

export interface ReloadSources {
  configs: string[];
  cli: CliConfigInput;
  /** Grace for connections of removed or replaced services, ms. */
  graceMs: number;
}

/** Reads the sources again and applies them. Rejects with the reason when refused. */
export function reloadFromSources(app: App, src: ReloadSources, trigger: string): Promise<ReloadResult> {
  return app.reload(trigger, async () => (await loadConfig(src.configs, src.cli)).config, src.graceMs);
}

/**
 * The file `POST /config` writes: the one -C file the config came from, when it is the only
 * source (no -L/-F flags, no stdin, inline JSON or URL); undefined otherwise.
 */
export function savableFile(configs: string[], cli: CliConfigInput): string | undefined {
  if (configs.length !== 1 || cli.listen.length > 0 || cli.forward.length > 0) return undefined;
  const c = configs[0]!;
  if (c === '-' || c.trimStart().startsWith('{') || /^https?:\/\//i.test(c)) return undefined;
  return c;
}

/** Installs SIGHUP and the `-R` period; returns what removes them. */
export function installReloadTriggers(app: App, src: ReloadSources, period: string | undefined): () => void {
  const quiet = (p: Promise<ReloadResult>): void => void p.catch(() => undefined); // logged by the app
  const onHup = (): void => quiet(reloadFromSources(app, src, 'SIGHUP'));
  process.on('SIGHUP', onHup);
  const ms = period ? parseGoDurationMs(period) : undefined;
  const timer = ms && ms > 0 ? setInterval(() => quiet(reloadFromSources(app, src, '-R')), Math.max(ms, 1_000)) : undefined;
  timer?.unref();
  return () => {
    process.off('SIGHUP', onHup);
    if (timer) clearInterval(timer);
  };
}
