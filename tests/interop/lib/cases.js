// tests/interop/lib/cases.js — what the official SDK client must be able to
// do with the everything server through the gateway, whatever transport
// carries it upstream: list tools, call echo, receive progress, list and read
// a resource, get a prompt. Each *.test.js file starts its own gateway and
// backends and runs these checks against one backend as the gateway shows it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { it } from "node:test";

import { EVERYTHING_DOCS } from "./harness.js";

// The tools the everything server (the version pinned in package-lock.json)
// registers for every client; it adds a few more depending on the client
// capabilities the gateway announces upstream, which are not checked here.
export const BASE_TOOLS = [
    "echo",
    "get-annotated-message",
    "get-env",
    "get-resource-links",
    "get-resource-reference",
    "get-structured-content",
    "get-sum",
    "get-tiny-image",
    "gzip-file-as-resource",
    "toggle-simulated-logging",
    "toggle-subscriber-updates",
    "trigger-long-running-operation",
];

const DOC = "instructions.md"; // a static resource it serves from its docs/
const DOC_URI = `demo://resource/static/document/${DOC}`;

/**
 * Records every message the SDK's transport hands to the client, in arrival
 * order, so a test can see the wire order (the Client's own callbacks run
 * some of them later, see the progress test).
 */
export function tapTransport(client) {
    const seen = [];
    const t = client.transport;
    const inner = t.onmessage;
    t.onmessage = (msg, extra) => {
        seen.push(msg);
        inner?.call(t, msg, extra);
    };
    return seen;
}

/**
 * Registers the checks for one backend.
 *   env.client()     the connected SDK Client
 *   env.seen()       its transport's messages (tapTransport)
 *   tool(n)/prompt(n)  the name the gateway shows for the backend's n
 *   uri(u)           the URI the gateway shows for the backend's u
 *   marker           the value of INTEROP_MARK in that backend's environment,
 *                    which proves which backend answered
 */
export function backendCases(label, env) {
    const { tool, prompt, uri, marker } = env;

    it(`${label}: tools/list shows the backend's tools with their schemas`, async () => {
        const { tools } = await env.client().listTools();
        const names = tools.map((t) => t.name);
        for (const base of BASE_TOOLS) assert.ok(names.includes(tool(base)), `${tool(base)} missing from ${names.join(", ")}`);
        const echo = tools.find((t) => t.name === tool("echo"));
        assert.equal(echo.inputSchema.type, "object");
        assert.ok(echo.inputSchema.properties?.message, "echo's inputSchema lost its message property");
        assert.deepEqual(echo.inputSchema.required, ["message"]);
    });

    it(`${label}: tools/call echo is answered by this backend`, async () => {
        const message = `interop ${randomBytes(6).toString("hex")} ünïcødé "quoted"`;
        const r = await env.client().callTool({ name: tool("echo"), arguments: { message } });
        assert.notEqual(r.isError, true);
        assert.deepEqual(r.content, [{ type: "text", text: `Echo: ${message}` }]);

        const e = await env.client().callTool({ name: tool("get-env"), arguments: {} });
        assert.equal(JSON.parse(e.content[0].text).INTEROP_MARK, marker, "get-env answered by the wrong backend");
    });

    it(`${label}: tools/call with a progressToken gets every progress notification, in order, before the result`, async () => {
        const steps = 4;
        const seen = env.seen();
        const from = seen.length;
        const got = [];
        const r = await env.client().callTool(
            { name: tool("trigger-long-running-operation"), arguments: { duration: 0.8, steps } },
            undefined,
            { onprogress: (p) => got.push(p), timeout: 15000 },
        );
        assert.equal(r.content[0].text, `Long running operation completed. Duration: 0.8 seconds, Steps: ${steps}.`);

        // On the wire, as the gateway sent them: the steps notifications,
        // carrying the token the SDK chose (the request id), then the result.
        const mine = seen.slice(from);
        const progress = mine.filter((m) => m.method === "notifications/progress");
        const resultAt = mine.findIndex((m) => "result" in m && m.result?.content?.[0]?.text === r.content[0].text);
        assert.ok(resultAt >= 0, "the result was not seen on the transport");
        const token = progress[0]?.params?.progressToken;
        assert.deepEqual(
            progress.map((m) => [m.params.progressToken, m.params.progress, m.params.total]),
            Array.from({ length: steps }, (_, i) => [token, i + 1, steps]),
        );
        assert.equal(Number(token), Number(mine[resultAt].id), "progressToken is not the request's own token");
        for (const m of progress) assert.ok(mine.indexOf(m) < resultAt, "a progress notification came after the result");

        // Through the Client's onprogress callback. The SDK (1.32.2) runs
        // notification handlers a microtask later but responses at once, so
        // when the last notification and the result arrive in one read it
        // drops that last notification ("unknown token"); the same happens
        // with the SDK talking to the server directly over stdio. So the
        // callback must see steps or steps-1 of them, in order.
        assert.ok(got.length >= steps - 1, `onprogress saw ${got.length} of ${steps}`);
        assert.deepEqual(
            got,
            Array.from({ length: got.length }, (_, i) => ({ progress: i + 1, total: steps })),
        );
    });

    it(`${label}: resources/list shows the backend's documents and resources/read returns one`, async () => {
        const { resources } = await env.client().listResources();
        const shown = uri(DOC_URI);
        const doc = resources.find((r) => r.uri === shown);
        assert.ok(doc, `${shown} missing from ${resources.map((r) => r.uri).join(", ")}`);
        assert.equal(doc.mimeType, "text/markdown");

        const r = await env.client().readResource({ uri: shown });
        assert.equal(r.contents.length, 1);
        assert.equal(r.contents[0].mimeType, "text/markdown");
        assert.equal(r.contents[0].text, readFileSync(path.join(EVERYTHING_DOCS, DOC), "utf8"));
        if (shown === DOC_URI) assert.equal(r.contents[0].uri, DOC_URI);

        const { resourceTemplates } = await env.client().listResourceTemplates();
        assert.ok(
            resourceTemplates.some((t) => t.uriTemplate === uri("demo://resource/dynamic/text/{resourceId}")),
            `text template missing from ${resourceTemplates.map((t) => t.uriTemplate).join(", ")}`,
        );
        // A URI of that template, read through the gateway.
        const id = 1000 + Math.floor(Math.random() * 9000);
        const dyn = await env.client().readResource({ uri: uri(`demo://resource/dynamic/text/${id}`) });
        assert.equal(dyn.contents.length, 1);
        assert.ok(
            dyn.contents[0].text.startsWith(`Resource ${id}: This is a plaintext resource`),
            `unexpected text: ${dyn.contents[0].text}`,
        );
    });

    it(`${label}: prompts/list and prompts/get, with and without arguments`, async () => {
        const { prompts } = await env.client().listPrompts();
        const names = prompts.map((p) => p.name);
        assert.ok(names.includes(prompt("simple-prompt")), `${prompt("simple-prompt")} missing from ${names.join(", ")}`);
        const args = prompts.find((p) => p.name === prompt("args-prompt"));
        assert.ok(args, `${prompt("args-prompt")} missing`);
        assert.deepEqual(
            args.arguments.map((a) => [a.name, a.required]),
            [
                ["city", true],
                ["state", false],
            ],
        );

        const simple = await env.client().getPrompt({ name: prompt("simple-prompt") });
        assert.deepEqual(simple.messages, [
            { role: "user", content: { type: "text", text: "This is a simple prompt without arguments." } },
        ]);
        const city = `Paris-${randomBytes(3).toString("hex")}`;
        const withArgs = await env.client().getPrompt({ name: prompt("args-prompt"), arguments: { city, state: "IdF" } });
        assert.equal(withArgs.messages[0].content.text, `What's weather in ${city}, IdF?`);
    });
}
