import net from 'node:net';

/**
 * A TCP load balancer in front of the orchestrator replicas, as a deployment has one: workers and
 * the product know one URL, each new connection goes to the next replica in turn, and a replica
 * that refuses the connection (killed, not up yet) is skipped. When a replica dies its connections
 * are reset, which is what clients see when a real one crashes behind a balancer.
 */
export class Balancer {
  private backends: { url: string; port: number }[] = [];
  private next = 0;
  private readonly open = new Set<net.Socket>();
  private readonly server = net.createServer((client) => this.route(client));
  /** Connections handed to each backend URL so far: the load split between replicas. */
  readonly connections = new Map<string, number>();

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  setBackends(urls: string[]): void {
    this.backends = urls.map((url) => ({ url, port: Number(new URL(url).port) }));
  }

  /** Stops listening and cuts every connection still open (clients keep theirs alive). */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.open) socket.destroy();
    return closed;
  }

  private route(client: net.Socket): void {
    let upstream: net.Socket | undefined;
    this.open.add(client);
    client.pause();
    client.on('error', () => upstream?.destroy());
    client.on('close', () => {
      this.open.delete(client);
      upstream?.destroy();
    });
    const attempt = (tried: number) => {
      const backends = this.backends;
      if (tried >= backends.length || client.destroyed) return client.destroy();
      const backend = backends[this.next++ % backends.length]!;
      const socket = net.connect(backend.port, '127.0.0.1');
      upstream = socket;
      const refused = () => {
        socket.destroy();
        attempt(tried + 1);
      };
      socket.once('error', refused);
      socket.once('connect', () => {
        socket.off('error', refused);
        this.connections.set(backend.url, (this.connections.get(backend.url) ?? 0) + 1);
        // Either side ending abruptly ends the other: a crashed replica resets its clients.
        socket.on('error', () => client.destroy());
        socket.on('close', () => client.destroy());
        client.pipe(socket).pipe(client);
        client.resume();
      });
    };
    attempt(0);
  }
}
