/**
 * Polls a file for changes (inode, size, mtime) and calls `onChange`; used by the ingress and
 * auther `file` sources. fs.watchFile missed changes made right after it started; comparing a
 * signature taken just before each read does not (a change during a read shows at the next poll).
 */
import { stat } from 'node:fs/promises';

export const FILE_POLL_MS = 500;

/** Identifies a version of a file: inode, size and mtime ("missing" when it cannot be read). */
export async function fileSignature(path: string): Promise<string> {
  try {
    const st = await stat(path);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

export class FilePoller {
  #sig = '';
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(
    readonly path: string,
    readonly onChange: () => Promise<void>,
    readonly intervalMs = FILE_POLL_MS,
  ) {}

  /** Records the current version; call right before reading the file. */
  async mark(): Promise<void> {
    this.#sig = await fileSignature(this.path);
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#poll(), this.intervalMs);
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      if ((await fileSignature(this.path)) !== this.#sig) await this.onChange();
    } finally {
      this.#busy = false;
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
