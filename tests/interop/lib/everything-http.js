// tests/interop/lib/everything-http.js — runs the everything server's
// Streamable HTTP transport bound to 127.0.0.1 on a port chosen at run time.
//
// Usage: node everything-http.js <server-everything dist/index.js>
//
// The server calls app.listen(process.env.PORT), which binds every interface
// and never says which port 0 became. Tests must listen on loopback only and
// must not guess ports, so before loading the server this wrapper makes a
// port-only listen() bind 127.0.0.1, and prints the bound address as
// "INTEROP_LISTENING 127.0.0.1:<port>" on stderr once it is listening.

import net from "node:net";
import { webcrypto } from "node:crypto";
import { pathToFileURL } from "node:url";

// The SDK's Streamable HTTP server uses the global Web Crypto object, global
// from Node 19 on; Debian 12's Node 18 has it only as node:crypto's webcrypto.
if (typeof globalThis.crypto === "undefined") globalThis.crypto = webcrypto;

const main = process.argv[2];
if (!main) {
    console.error("usage: everything-http.js <server-everything dist/index.js>");
    process.exit(2);
}

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    // listen(port[, backlog][, cb]) and listen({port}) get the host added;
    // any other form (a path, a handle) is left alone.
    if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
        args.splice(1, 0, "127.0.0.1");
        if (typeof args[2] === "number") args.splice(2, 1); // drop a backlog in the host's place
    } else if (args[0] && typeof args[0] === "object" && "port" in args[0] && !args[0].host) {
        args[0] = { ...args[0], host: "127.0.0.1" };
    }
    this.once("listening", () => {
        const a = this.address();
        if (a && typeof a === "object") console.error(`INTEROP_LISTENING ${a.address}:${a.port}`);
    });
    return listen.apply(this, args);
};

// The server takes its transport from argv[2].
process.argv.splice(2, 1, "streamableHttp");
await import(pathToFileURL(main).href);
