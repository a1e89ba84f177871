/**
 * `npm start`: a working local tunnel in one process, on loopback only.
 *
 *   hello service (127.0.0.1:P1)  ←  client (rtcp)  ⇄  tunnel server (127.0.0.1:P2)
 *                                                          ↑ entry point (127.0.0.1:P3)
 *
 * It prints the exact curl line that reaches the hello service through the entry point.
 */
import http from 'node:http';
import { createLogger } from './observe/logger';
import { App } from './app/app';
import { buildConfigFromCli } from './cli/build';

const TUNNEL_ID = '4d21094e-b74c-4916-86c1-d9fa36ea677b';
const HOST = 'hello.burrow.local';

export async function runDemo(): Promise<void> {
  const logger = createLogger({ level: process.env.BURROW_DEMO_LOG ?? 'info' });
  const hello = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`hello from behind the tunnel (you asked for ${req.headers.host}${req.url})\n`);
  });
  await new Promise<void>((r) => hello.listen(0, '127.0.0.1', () => r()));
  const helloPort = (hello.address() as { port: number }).port;

  const server = new App(
    buildConfigFromCli([`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=${HOST}:${TUNNEL_ID}`], []),
    logger,
  );
  await server.start();
  const serverAddr = server.services[0]!.address();
  const entry = server.built.tunnelHandlers.get('service-0')!.entryPoints[0]!.address();

  let announced = false;
  const client = new App(
    buildConfigFromCli([`rtcp://:0/127.0.0.1:${helloPort}`], [`tunnel://${serverAddr}?tunnel.id=${TUNNEL_ID}`]),
    logger,
    {
      onBound: () => {
        if (announced) return;
        announced = true;
        process.stdout.write(
          `\nburrow demo is up: a tunnel server, a client behind it and a hello service, all on 127.0.0.1.\n` +
            `Try:\n\n  curl -H 'Host: ${HOST}' http://${entry}/\n\nPress Ctrl-C to stop.\n\n`,
        );
      },
    },
  );
  await client.start();

  const stop = (): void => {
    void (async () => {
      await client.stop(500);
      await server.stop(500);
      hello.close();
      process.exit(0);
    })();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
