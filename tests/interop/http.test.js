// tests/interop/http.test.js — the reference server
// @modelcontextprotocol/server-everything over Streamable HTTP on a loopback
// port, as an http backend of the gateway, driven by the official SDK client
// over WebSocket. One backend with routing.prefix auto: names unprefixed.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { connectClient, httpBackend, startEverythingHttp, startGateway } from "./lib/harness.js";
import { backendCases, tapTransport } from "./lib/cases.js";

describe("everything over Streamable HTTP behind the gateway", { timeout: 45000 }, () => {
    let srv, gw, client, seen;
    const marker = `http-${process.pid}`;

    // Stops what is running; the gateway must have stopped cleanly on TERM.
    async function cleanup() {
        await client?.close();
        const r = gw ? await gw.stop() : null;
        await srv?.stop();
        if (r) assert.deepEqual(r, { inTime: true, code: 0, signal: null }, gw.logs());
    }

    before(async () => {
        try {
            srv = await startEverythingHttp({ INTEROP_MARK: marker });
            gw = await startGateway({ backendsYaml: httpBackend("everything", srv.url) });
            await gw.waitReady(["everything"]);
            client = await connectClient(gw);
            seen = tapTransport(client);
        } catch (e) {
            await cleanup().catch(() => {});
            throw e;
        }
    }, { timeout: 20000 });

    after(cleanup, { timeout: 15000 });

    it("the gateway opened upstream sessions on the HTTP server", () => {
        // The server logs each session it creates (one per worker that
        // used it): the requests really went over Streamable HTTP.
        assert.match(srv.output(), /Session initialized with ID: [0-9a-f-]{36}/);
        assert.equal(client.getServerVersion().name, "mcp-bridge");
        const caps = client.getServerCapabilities();
        for (const c of ["tools", "prompts", "resources"]) assert.ok(caps[c], `capability ${c} missing: ${JSON.stringify(caps)}`);
    });

    backendCases("http", {
        client: () => client,
        seen: () => seen,
        tool: (n) => n,
        prompt: (n) => n,
        uri: (u) => u,
        marker,
    });
});
