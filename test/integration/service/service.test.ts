/**
 * A service over a real tcp listener with small handlers: every way a handler can report its
 * result (the service's Later, settled later; a promise of a result; a throw; a rejection)
 * is counted once, destroys the connection, and leaves nothing tracked.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata } from '../../../src/core/metadata';
import type { Handler, Later } from '../../../src/core/handler';
import { Service } from '../../../src/service/service';
import { TcpListener } from '../../../src/transport/tcp/listener';
import type { ServiceMetrics } from '../../../src/observe/service-metrics';
import { connect, memoryLogger, waitFor } from '../../helpers/net';

interface Finished {
  input: number;
  output: number;
  failed: boolean;
}

async function withService(handler: Handler, run: (port: number, svc: Service, finished: Finished[]) => Promise<void>): Promise<void> {
  const { logger } = memoryLogger('fatal');
  const finished: Finished[] = [];
  const metrics: ServiceMetrics = {
    requestStarted() {},
    requestFinished(_s, _d, input, output, failed) {
      finished.push({ input, output, failed });
    },
  };
  const svc = new Service({
    name: 'svc',
    listener: new TcpListener({ addr: '127.0.0.1:0', metadata: new Metadata({}), logger }),
    handler,
    listenerType: 'tcp',
    handlerType: 'test',
    network: 'tcp',
    logger,
    metrics,
  });
  await svc.start();
  try {
    await run(Number(svc.address().split(':')[1]), svc, finished);
  } finally {
    await svc.close(0);
  }
}

describe('service: how handlers report', () => {
  it('a Later settled after handle() returned: counted once, when it settles', async () => {
    let pending: Later | undefined;
    await withService(
      {
        handle(_conn, _log, later) {
          pending = later;
          return later;
        },
      },
      async (port, svc, finished) => {
        const c = await connect(port);
        await waitFor(() => pending !== undefined);
        assert.equal(svc.activeConnections, 1);
        assert.equal(finished.length, 0);
        const closed = new Promise((r) => c.once('end', r));
        c.resume();
        pending!.resolve({ inputBytes: 3, outputBytes: 7 });
        pending!.resolve({ inputBytes: 9, outputBytes: 9 });
        await closed; // the service destroyed the connection
        c.destroy();
        assert.deepEqual(finished, [{ input: 3, output: 7, failed: false }]);
        assert.equal(svc.activeConnections, 0);
      },
    );
  });

  it('an async handler resolving to the Later, a result, a throw and a rejection', async () => {
    const kinds = ['later', 'result', 'throw', 'reject'];
    let n = 0;
    await withService(
      {
        handle(_conn, _log, later) {
          const kind = kinds[n++];
          if (kind === 'throw') throw new Error('thrown');
          if (kind === 'reject') return Promise.reject(new Error('rejected'));
          if (kind === 'result') return Promise.resolve({ inputBytes: 1, outputBytes: 2 });
          setTimeout(() => later.resolve({ inputBytes: 5, outputBytes: 6 }), 20);
          return Promise.resolve(later);
        },
      },
      async (port, svc, finished) => {
        for (let i = 0; i < kinds.length; i++) {
          const c = await connect(port);
          c.resume();
          await new Promise((r) => c.once('end', r));
          c.destroy();
          await waitFor(() => finished.length === i + 1);
        }
        assert.deepEqual(finished, [
          { input: 5, output: 6, failed: false },
          { input: 1, output: 2, failed: false },
          { input: 0, output: 0, failed: true },
          { input: 0, output: 0, failed: true },
        ]);
        assert.equal(svc.activeConnections, 0);
      },
    );
  });
});
