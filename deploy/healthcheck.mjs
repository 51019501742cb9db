#!/usr/bin/env node
// The image's HEALTHCHECK: GET /healthz on the port the service listens on (AGENTORCH_LISTEN;
// a wildcard address is asked on loopback), or on AGENTORCH_HEALTHCHECK_URL when set. Exit 0
// on 200, else 1; the answer ("ok" and each part's state) is printed, so Docker keeps it in
// .State.Health.Log. No dependencies: plain Node.
import http from "node:http";

function healthzUrl(env) {
  if (env.AGENTORCH_HEALTHCHECK_URL) return env.AGENTORCH_HEALTHCHECK_URL;
  const listen = (env.AGENTORCH_LISTEN || "127.0.0.1:50051").trim();
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`cannot read AGENTORCH_LISTEN="${listen}"`);
  let host = m[1] ?? m[2];
  if (host === "" || host === "0.0.0.0") host = "127.0.0.1";
  if (host === "::") host = "::1";
  return `http://${host.includes(":") ? `[${host}]` : host}:${m[3]}/healthz`;
}

const url = healthzUrl(process.env);
const req = http.get(url, { timeout: 4000 }, (res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (d) => (body += d));
  res.on("end", () => {
    process.stdout.write(`${url}: ${res.statusCode}\n${body}`);
    process.exit(res.statusCode === 200 ? 0 : 1);
  });
});
req.on("timeout", () => req.destroy(new Error("timed out after 4 s")));
req.on("error", (err) => {
  console.error(`${url}: ${err.message}`);
  process.exit(1);
});
