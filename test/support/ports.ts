/**
 * Ports for tasker servers that a test or the bench starts as a separate process.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * A port to give a server process started later. Not one the kernel picks (port 0): those come
 * from the ephemeral range, where any outgoing connection made meanwhile (the database, the
 * broker, curl) could take it first. Below that range only listeners compete, and the port was
 * free a moment ago.
 */
export async function freePort(): Promise<number> {
  const below = ephemeralLow();
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (below - 10_000));
    if (await canListen(port)) return port;
  }
}

/** Where Linux starts picking ports for outgoing connections (32768 by default). */
function ephemeralLow(): number {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
