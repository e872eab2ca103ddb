/** Listening: the app from createApp on a host and port (127.0.0.1 by default), closed cleanly. */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { SteerlabError } from "../errors.js";
import { createApp, type ServeOptions } from "./app.js";

export interface ListenOptions extends ServeOptions {
  /** Default 127.0.0.1 (loopback only); pass 0.0.0.0 to serve a network, with an API key. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
}

export interface RunningServer {
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

export function startServer(opts: ListenOptions): Promise<RunningServer> {
  const app = createApp(opts);
  const host = opts.host ?? "127.0.0.1";
  return new Promise((resolve, reject) => {
    const server = serve(
      { fetch: app.fetch, hostname: host, port: opts.port ?? 8080 },
      (info: AddressInfo) => {
        const h = info.address.includes(":") ? `[${info.address}]` : info.address;
        resolve({
          url: `http://${h}:${info.port}`,
          host: info.address,
          port: info.port,
          close: () =>
            new Promise<void>((res) => {
              const s = server as unknown as { close(cb: () => void): void; closeAllConnections?(): void };
              s.close(() => res());
              s.closeAllConnections?.();
            }),
        });
      },
    );
    server.once("error", (e: NodeJS.ErrnoException) => reject(listenError(e, host, opts.port ?? 8080)));
  });
}

/** Why a server could not listen, in words (the port taken, a privileged port, an address not on this machine). */
function listenError(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const why: Record<string, string> = {
    EADDRINUSE: "the port is already in use",
    EACCES: "permission denied (ports below 1024 need privileges)",
    EADDRNOTAVAIL: "the address is not one of this machine's",
  };
  const reason = e.code ? why[e.code] : undefined;
  if (!reason) return e;
  return new SteerlabError("bad_input", `cannot listen on ${host}:${port}: ${reason} (${e.code})`, {
    field: "port",
    hint: "pick another --port (0 = any free one) or --host",
  });
}
