// tests/interop/both.test.js — two copies of the reference server
// @modelcontextprotocol/server-everything behind one gateway, one over stdio
// ("local") and one over Streamable HTTP ("remote"), seen through one
// WebSocket of the official SDK client. With two backends, routing.prefix
// auto shows names as <backend>__<name> and URIs as <backend>+<uri>, and
// every call must be answered by the backend its prefix names.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { McpError } from "@modelcontextprotocol/sdk/types.js";

import { connectClient, everythingStdioBackend, httpBackend, startEverythingHttp, startGateway } from "./lib/harness.js";
import { BASE_TOOLS, backendCases, tapTransport } from "./lib/cases.js";

describe("everything over stdio and over Streamable HTTP behind one gateway", { timeout: 50000 }, () => {
    let srv, gw, client, seen;
    const localMark = `local-${process.pid}`;
    const remoteMark = `remote-${process.pid}`;

    // Stops what is running; the gateway must have stopped cleanly on TERM.
    async function cleanup() {
        await client?.close();
        const r = gw ? await gw.stop() : null;
        await srv?.stop();
        if (r) assert.deepEqual(r, { inTime: true, code: 0, signal: null }, gw.logs());
    }

    before(async () => {
        try {
            srv = await startEverythingHttp({ INTEROP_MARK: remoteMark });
            gw = await startGateway({
                backendsYaml:
                    everythingStdioBackend("local", { INTEROP_MARK: localMark }) + httpBackend("remote", srv.url),
            });
            await gw.waitReady(["local", "remote"]);
            client = await connectClient(gw);
            seen = tapTransport(client);
        } catch (e) {
            await cleanup().catch(() => {});
            throw e;
        }
    }, { timeout: 25000 });

    after(cleanup, { timeout: 15000 });

    it("tools/list merges both backends, every name prefixed, none twice", async () => {
        const names = (await client.listTools()).tools.map((t) => t.name);
        assert.equal(new Set(names).size, names.length, `duplicates in ${names.join(", ")}`);
        const local = names.filter((n) => n.startsWith("local__")).map((n) => n.slice(7));
        const remote = names.filter((n) => n.startsWith("remote__")).map((n) => n.slice(8));
        assert.equal(local.length + remote.length, names.length, `unprefixed names in ${names.join(", ")}`);
        // The same server behind both: the same tools on each side.
        assert.deepEqual([...local].sort(), [...remote].sort());
        for (const base of BASE_TOOLS) assert.ok(local.includes(base), `local__${base} missing`);
    });

    it("a name with an unknown prefix, or without one, is refused with -32602", async () => {
        for (const name of ["nowhere__echo", "echo"]) {
            await assert.rejects(
                client.callTool({ name, arguments: { message: "x" } }),
                (e) => e instanceof McpError && e.code === -32602,
                name,
            );
        }
    });

    it("progress of two calls running at once on both backends reaches each caller", async () => {
        const call = (backend, steps) => {
            const got = [];
            const p = client.callTool(
                { name: `${backend}__trigger-long-running-operation`, arguments: { duration: 0.8, steps } },
                undefined,
                { onprogress: (x) => got.push(x), timeout: 15000 },
            );
            return p.then((r) => ({ r, got }));
        };
        const from = seen.length;
        const [a, b] = await Promise.all([call("local", 3), call("remote", 5)]);
        assert.equal(a.r.content[0].text, "Long running operation completed. Duration: 0.8 seconds, Steps: 3.");
        assert.equal(b.r.content[0].text, "Long running operation completed. Duration: 0.8 seconds, Steps: 5.");
        // Each callback sees only its own call's notifications (total tells
        // them apart); see cases.js for why the last one may be missing.
        for (const [x, steps] of [
            [a, 3],
            [b, 5],
        ]) {
            assert.ok(x.got.length >= steps - 1, `saw ${x.got.length} of ${steps}`);
            for (const p of x.got) assert.equal(p.total, steps);
        }
        // On the wire: 3 + 5 notifications, on two distinct tokens.
        const progress = seen.slice(from).filter((m) => m.method === "notifications/progress");
        const tokens = new Map();
        for (const m of progress) tokens.set(m.params.progressToken, (tokens.get(m.params.progressToken) ?? 0) + 1);
        assert.deepEqual([...tokens.values()].sort(), [3, 5]);
    });

    for (const [backend, marker] of [
        ["local", localMark],
        ["remote", remoteMark],
    ]) {
        backendCases(backend, {
            client: () => client,
            seen: () => seen,
            tool: (n) => `${backend}__${n}`,
            prompt: (n) => `${backend}__${n}`,
            uri: (u) => `${backend}+${u}`,
            marker,
        });
    }
});
