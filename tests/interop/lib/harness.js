// tests/interop/lib/harness.js — starts and stops what an interop test needs:
// the real gateway ($MB_BUILD_DIR/mcp-bridge -g) on a generated configuration,
// the official reference server (@modelcontextprotocol/server-everything)
// over Streamable HTTP, and the official TypeScript SDK client connected to
// the gateway over WebSocket.
//
// Everything listens on 127.0.0.1 only, on ports chosen at run time; every
// process is started in a process group of its own and stopped by its pid
// (TERM, a bounded wait, then KILL to its group). Temporary files (config,
// pid file, logs) live in one mkdtemp directory per gateway and the shm file
// is unique per gateway, so the test files can run in parallel.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

import { WebSocket as WsWebSocket } from "ws";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { WebSocketClientTransport } from "@modelcontextprotocol/sdk/client/websocket.js";

// The SDK's WebSocket transport uses the global WebSocket, which Node has
// only from 22 on (20 needs --experimental-websocket, 18 has none). The ws
// package implements the same browser API (onopen/onmessage with .data,
// the subprotocol argument), so it stands in when the global is missing.
if (typeof globalThis.WebSocket === "undefined") globalThis.WebSocket = WsWebSocket;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..", "..");
const require = createRequire(import.meta.url);

// The everything server's entry point (its package "bin") and its docs/
// folder, whose files it serves as static resources.
const everythingPkg = path.dirname(require.resolve("@modelcontextprotocol/server-everything/package.json"));
export const EVERYTHING_MAIN = path.join(everythingPkg, "dist", "index.js");
export const EVERYTHING_DOCS = path.join(everythingPkg, "dist", "docs");
const HTTP_WRAPPER = path.join(here, "everything-http.js");

export const NODE = process.execPath;
/** Workers of every gateway the tests start. */
export const WORKERS = 2;

function buildDir() {
    const dir = process.env.MB_BUILD_DIR || "build";
    return path.isAbsolute(dir) ? dir : path.join(repoRoot, dir);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every process still running when this test process ends (a failed hook
// before cleanup, the runner cancelled, `timeout` from make) is killed with
// its group, and the gateways' files are removed. The children are in groups
// of their own, so a signal to this process does not reach them: forward
// it that way, then die of it.
const live = new Set();
const leftovers = new Set(); // shm files and temporary directories
function killAll() {
    for (const pid of live) {
        try {
            process.kill(-pid, "SIGKILL");
        } catch {}
    }
    live.clear();
    for (const p of leftovers) rmSync(p, { recursive: true, force: true });
    leftovers.clear();
}
process.on("exit", killAll);
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) {
    process.once(sig, () => {
        killAll();
        process.kill(process.pid, sig);
    });
}

/** A TCP port free on 127.0.0.1 at the time of asking. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

/** Resolves once 127.0.0.1:port accepts a connection; rejects after timeoutMs
 * or as soon as proc has exited. */
async function waitForPort(port, timeoutMs, proc, what) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        if (proc.exitCode !== null || proc.signalCode !== null)
            throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}) before listening`);
        const ok = await new Promise((resolve) => {
            const s = net.connect({ host: "127.0.0.1", port });
            s.once("connect", () => {
                s.destroy();
                resolve(true);
            });
            s.once("error", () => resolve(false));
        });
        if (ok) return;
        if (Date.now() > deadline) throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
        await sleep(50);
    }
}

/** Stops a child started by this file: TERM to its pid, up to timeoutMs for
 * it to exit, then KILL to its process group (what it started too). */
async function stopChild(proc, timeoutMs) {
    const pid = proc.pid;
    if (!pid) return null;
    const exited = new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) resolve();
        else proc.once("exit", () => resolve());
    });
    if (proc.exitCode === null && proc.signalCode === null) {
        try {
            process.kill(pid, "SIGTERM");
        } catch {}
    }
    let timer;
    const inTime = await Promise.race([
        exited.then(() => true),
        new Promise((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer); // a pending timer would keep this test process alive
    // Whatever is left of the group (a worker, a stdio backend) goes too.
    try {
        process.kill(-pid, "SIGKILL");
    } catch {}
    await exited;
    live.delete(pid);
    return { inTime, code: proc.exitCode, signal: proc.signalCode };
}

/** Spawns cmd in a process group of its own, stdout/stderr collected. */
function spawnGroup(cmd, args, opts) {
    const proc = spawn(cmd, args, { ...opts, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    live.add(proc.pid);
    proc.output = "";
    proc.stdout.on("data", (b) => (proc.output += b));
    proc.stderr.on("data", (b) => (proc.output += b));
    return proc;
}

/**
 * The everything server over Streamable HTTP (POST/GET/DELETE /mcp) on a
 * loopback port it picks itself: the wrapper binds it to 127.0.0.1 and
 * reports the port. env is added to its environment.
 */
export async function startEverythingHttp(env = {}) {
    const proc = spawnGroup(NODE, [HTTP_WRAPPER, EVERYTHING_MAIN], {
        env: { ...process.env, ...env, PORT: "0" },
    });
    const port = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`everything (http) did not start:\n${proc.output}`)), 15000);
        const onData = () => {
            const m = /INTEROP_LISTENING 127\.0\.0\.1:(\d+)/.exec(proc.output);
            if (m) {
                clearTimeout(timer);
                resolve(Number(m[1]));
            }
        };
        proc.stdout.on("data", onData);
        proc.stderr.on("data", onData);
        proc.once("exit", (code, sig) => {
            clearTimeout(timer);
            reject(new Error(`everything (http) exited (${code ?? sig}):\n${proc.output}`));
        });
    });
    return {
        proc,
        port,
        url: `http://127.0.0.1:${port}/mcp`,
        output: () => proc.output,
        stop: () => stopChild(proc, 3000),
    };
}

/** A stdio backend entry running the everything server (one per worker). */
export function everythingStdioBackend(name, env = {}) {
    const envYaml = Object.entries(env)
        .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
        .join(", ");
    return (
        `  - name: ${name}\n` +
        `    transport: stdio\n` +
        `    command: [${JSON.stringify(NODE)}, ${JSON.stringify(EVERYTHING_MAIN)}, stdio]\n` +
        `    env: {${envYaml}}\n` +
        `    request_timeout: 20s\n`
    );
}

/** An http (Streamable HTTP) backend entry for a server at url. */
export function httpBackend(name, url) {
    return (
        `  - name: ${name}\n` +
        `    transport: http\n` +
        `    endpoints: [{url: ${JSON.stringify(url)}}]\n` +
        `    request_timeout: 20s\n`
    );
}

/**
 * Writes a configuration (2 workers, a free port, unique shm file, pid file
 * and error log in a temporary directory, metrics off) with backendsYaml as
 * its backends list and routing.prefix = prefix, and starts
 * `mcp-bridge -g -c <it>`; resolves once the port accepts connections.
 */
export async function startGateway({ backendsYaml, prefix = "auto" }) {
    const bin = path.join(buildDir(), "mcp-bridge");
    if (!existsSync(bin)) throw new Error(`${bin} not found: build it first (make all)`);
    const dir = mkdtempSync(path.join(os.tmpdir(), "mb-interop-"));
    leftovers.add(dir);
    const port = await freePort();
    const shm = `/dev/shm/mb-interop-${process.pid}-${randomBytes(4).toString("hex")}`;
    const conf = path.join(dir, "gateway.yaml");
    const errorLog = path.join(dir, "error.log");
    writeFileSync(
        conf,
        "# generated by tests/interop/lib/harness.js for one interop test\n" +
            `workers: ${WORKERS}\n` +
            `pid_file: ${JSON.stringify(path.join(dir, "mcp-bridge.pid"))}\n` +
            `shm: {path: ${JSON.stringify(shm)}}\n` +
            `logging: {level: info, error_log: ${JSON.stringify(errorLog)}}\n` +
            "server:\n" +
            `  listen: [{address: 127.0.0.1, port: ${port}}]\n` +
            "  paths: [/, /mcp]\n" +
            "  shutdown_timeout: 3s\n" +
            "metrics: {enabled: false}\n" +
            `routing: {prefix: ${prefix}}\n` +
            "backends:\n" +
            backendsYaml,
    );
    leftovers.add(shm);
    const proc = spawnGroup(bin, ["-g", "-c", conf], { cwd: dir });
    let saved = null;
    const gw = {
        proc,
        port,
        dir,
        conf,
        url: `ws://127.0.0.1:${port}/mcp`,
        /** The master's output and the error log, for failure messages. */
        logs() {
            if (saved !== null) return saved; // stopped: its files are gone
            let log = "";
            try {
                log = readFileSync(errorLog, "utf8");
            } catch {}
            return `--- master output ---\n${proc.output}\n--- error.log ---\n${log}`;
        },
        /**
         * Resolves once the error log says every worker (2) finished its
         * handshake with each of the named backends; rejects after
         * timeoutMs with the logs.
         */
        async waitReady(names, timeoutMs = 15000) {
            const deadline = Date.now() + timeoutMs;
            for (;;) {
                let log = "";
                try {
                    log = readFileSync(errorLog, "utf8");
                } catch {}
                const missing = names.filter((n) => {
                    const workers = new Set();
                    for (const m of log.matchAll(/worker (\d+): backend ([A-Za-z0-9_-]+): ready\b/g))
                        if (m[2] === n) workers.add(m[1]);
                    return workers.size < WORKERS;
                });
                if (missing.length === 0) return;
                if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`mcp-bridge exited\n${gw.logs()}`);
                if (Date.now() > deadline)
                    throw new Error(`backends ${missing.join(", ")} not ready in every worker within ${timeoutMs} ms\n${gw.logs()}`);
                await sleep(100);
            }
        },
        async stop() {
            const r = await stopChild(proc, 5000);
            saved = gw.logs();
            rmSync(shm, { force: true });
            rmSync(dir, { recursive: true, force: true });
            leftovers.delete(shm);
            leftovers.delete(dir);
            return r;
        },
    };
    try {
        await waitForPort(port, 10000, proc, "mcp-bridge");
    } catch (e) {
        const logs = gw.logs();
        await gw.stop();
        throw new Error(`${e.message}\n${logs}`);
    }
    return gw;
}

/** The official SDK client, connected to the gateway over WebSocket. */
export async function connectClient(gw) {
    const client = new Client({ name: "mcp-bridge-interop", version: "1.0.0" });
    await client.connect(new WebSocketClientTransport(new URL(gw.url)));
    return client;
}
