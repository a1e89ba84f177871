'use strict';
/**
 * Preloaded into burrow processes by the soak run (NODE_OPTIONS="--expose-gc --require …").
 * On SIGUSR2 it collects garbage (when --expose-gc is on), then writes one JSON line to stderr
 * with the process's memory, open file descriptors and active handles. Nothing else changes in
 * the process.
 */
const fs = require('node:fs');

function fdCount() {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

process.on('SIGUSR2', () => {
  if (typeof global.gc === 'function') {
    global.gc();
    global.gc();
  }
  const m = process.memoryUsage();
  const line = {
    soakProbe: true,
    pid: process.pid,
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    handles: process._getActiveHandles().length,
    requests: process._getActiveRequests().length,
    fds: fdCount(),
  };
  process.stderr.write(JSON.stringify(line) + '\n');
});
