// tests/interop/stdio.test.js — the reference server
// @modelcontextprotocol/server-everything as a stdio backend of the gateway
// (one child per worker), driven by the official SDK client over WebSocket.
// One backend with routing.prefix auto: names are shown unprefixed.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { connectClient, everythingStdioBackend, startGateway } from "./lib/harness.js";
import { backendCases, tapTransport } from "./lib/cases.js";

describe("everything over stdio behind the gateway", { timeout: 45000 }, () => {
    let gw, client, seen, earlyCaps;
    const marker = `stdio-${process.pid}`;

    // Stops what is running; the gateway must have stopped cleanly on TERM
    // (it then stops its stdio children itself).
    async function cleanup() {
        await client?.close();
        const r = gw ? await gw.stop() : null;
        if (r) assert.deepEqual(r, { inTime: true, code: 0, signal: null }, gw.logs());
    }

    before(async () => {
        try {
            gw = await startGateway({ backendsYaml: everythingStdioBackend("everything", { INTEROP_MARK: marker }) });
            // A client that initializes at once, while the workers' Node
            // children are still starting (that takes over a second).
            const early = await connectClient(gw);
            earlyCaps = early.getServerCapabilities();
            await early.close();
            await gw.waitReady(["everything"]);
            client = await connectClient(gw);
            seen = tapTransport(client);
        } catch (e) {
            await cleanup().catch(() => {});
            throw e;
        }
    }, { timeout: 20000 });

    after(cleanup, { timeout: 15000 });

    it("initialize is answered by the gateway, with the backend's prompts and resources", () => {
        assert.equal(client.getServerVersion().name, "mcp-bridge");
        const caps = client.getServerCapabilities();
        for (const c of ["tools", "prompts", "resources"]) assert.ok(caps[c], `capability ${c} missing: ${JSON.stringify(caps)}`);
    });

    // A client that initializes while the backend is still starting gets
    // its reply once the backend's handshake is done (the gateway holds it,
    // at most min(routing.request_timeout, 5 s): worker/mcp.h), so it learns
    // of the backend's prompts and resources (a client with
    // enforceStrictCapabilities would otherwise refuse prompts/list).
    it("initialize before the backends are ready still announces prompts and resources", () => {
        for (const c of ["tools", "prompts", "resources"])
            assert.ok(earlyCaps[c], `capability ${c} missing: ${JSON.stringify(earlyCaps)}`);
    });

    backendCases("stdio", {
        client: () => client,
        seen: () => seen,
        tool: (n) => n,
        prompt: (n) => n,
        uri: (u) => u,
        marker,
    });
});
