#!/usr/bin/env node
// The Dockerfile, deploy/compose.yaml and deploy/agentorch.service must agree on what running
// agentorch in a container takes (README "Run it in a container"): the Docker socket mounted
// with its group added for the non-root user, the data directory mounted from the host on the
// image's AGENTORCH_DATA_DIR, the API port, operator tokens (the API listens beyond loopback),
// and the health check. Exits 1 naming each disagreement. Run by scripts/check-deploy.sh.
import { readFileSync } from "node:fs";
import { parse } from "yaml";

const problems = [];
const check = (ok, what) => ok || problems.push(what);

// ---- Dockerfile
const dockerfile = readFileSync("Dockerfile", "utf8").replace(/\\\n/g, " ");
const env = Object.fromEntries([...dockerfile.matchAll(/\b(AGENTORCH_[A-Z_]+)=(\S+)/g)].map((m) => [m[1], m[2]]));
const dataDir = env.AGENTORCH_DATA_DIR;
const port = /:(\d+)$/.exec(env.AGENTORCH_LISTEN ?? "")?.[1];
check(/^ARG BASE=node:20-bookworm-slim$/m.test(dockerfile), "Dockerfile: ARG BASE=node:20-bookworm-slim");
check(dataDir !== undefined && port !== undefined, "Dockerfile: ENV AGENTORCH_DATA_DIR and AGENTORCH_LISTEN (HOST:PORT)");
check(new RegExp(`^EXPOSE ${port}$`, "m").test(dockerfile), `Dockerfile: EXPOSE ${port} (the port of AGENTORCH_LISTEN)`);
const user = /^USER (\S+)/m.exec(dockerfile)?.[1] ?? "";
check(user !== "" && !/^(0|root)(:|$)/.test(user), "Dockerfile: USER is not root");
check(/^HEALTHCHECK .*CMD .*healthcheck\.mjs/m.test(dockerfile), "Dockerfile: HEALTHCHECK runs deploy/healthcheck.mjs");

// ---- compose
const compose = parse(readFileSync("deploy/compose.yaml", "utf8"));
const svc = compose?.services?.agentorch ?? {};
const volumes = (svc.volumes ?? []).map(String);
check(volumes.includes("/var/run/docker.sock:/var/run/docker.sock"), "compose: mounts /var/run/docker.sock");
check((svc.group_add ?? []).some((g) => /DOCKER_GID/.test(String(g))), "compose: group_add the socket's group (DOCKER_GID)");
check(volumes.some((v) => v.endsWith(`:${dataDir}`)), `compose: a host directory mounted on ${dataDir}`);
check((svc.ports ?? []).some((p) => String(p).endsWith(`:${port}`)), `compose: publishes port ${port}`);
check(/AGENTORCH_TOKENS/.test(JSON.stringify(svc.environment ?? {})), "compose: AGENTORCH_TOKENS (the API listens on 0.0.0.0)");
check(svc.healthcheck?.disable !== true, "compose: keeps the image's health check");

// ---- systemd unit
const unit = readFileSync("deploy/agentorch.service", "utf8").replace(/\\\n/g, " ");
const sections = [...unit.matchAll(/^\[(\w+)\]$/gm)].map((m) => m[1]);
check(["Unit", "Service", "Install"].every((s) => sections.includes(s)), "agentorch.service: [Unit], [Service] and [Install]");
const start = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? "";
check(/docker run /.test(start), "agentorch.service: ExecStart runs docker run");
check(start.includes("-v /var/run/docker.sock:/var/run/docker.sock"), "agentorch.service: mounts /var/run/docker.sock");
check(/--group-add "\$\$\(stat -c %%g \/var\/run\/docker\.sock\)"/.test(start), "agentorch.service: --group-add the socket's group");
check(start.includes(`:${dataDir}"`), `agentorch.service: a host directory mounted on ${dataDir}`);
check(start.includes(`:${port}"`), `agentorch.service: publishes port ${port}`);
check(/^Requires=docker\.service$/m.test(unit) && /^ExecStop=.*docker stop/m.test(unit), "agentorch.service: Requires=docker.service and ExecStop docker stop");

if (problems.length > 0) {
  console.error(`check-deploy: the deployment files disagree:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.error("check-deploy: Dockerfile, compose.yaml and agentorch.service agree");
