// Loopback helpers shared by the process-level tests.
import { createServer, type AddressInfo } from "node:net";

/** A TCP port free on 127.0.0.1 right now (for a child process to listen on). */
export const freePort = () =>
  new Promise<number>((r) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => r(p));
    });
  });
