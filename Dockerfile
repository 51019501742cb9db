# agentorch in a container, beside the Docker engine it drives (README "Run it in a container").
#
#   docker build -t agentorch .                       # BASE: node:20-bookworm-slim
#   docker build --build-arg BASE="$(bash scripts/make-base-image.sh)" -t agentorch .
#                                                     # where no registry is reachable: a local base
#
# Plain Dockerfile syntax: the classic builder (DOCKER_BUILDKIT=0, Docker 20.10) builds it.
ARG BASE=node:20-bookworm-slim

# ---- build: the dependencies (with dev tools) and the compiled dist/.
FROM ${BASE} AS build
# better-sqlite3 is native: npm takes a prebuilt binary when it can download one, else
# node-gyp builds it, which needs python3, make and g++ (and node's headers: npm's nodedir).
RUN if ! command -v python3 >/dev/null || ! command -v make >/dev/null || ! command -v g++ >/dev/null; then \
      apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 make g++ >/dev/null \
      && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
# Dependencies first, so a source change reuses this layer (the slow one).
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gen gen
COPY src src
# Then only what runs: production dependencies, and of better-sqlite3's build its addon alone.
RUN npm run build \
    && npm prune --omit=dev --no-audit --no-fund \
    && b=node_modules/better-sqlite3 \
    && mv $b/build/Release/better_sqlite3.node /tmp/ \
    && rm -rf $b/build $b/deps $b/src \
    && mkdir -p $b/build/Release \
    && mv /tmp/better_sqlite3.node $b/build/Release/

# ---- runtime: Node, the production dependencies and dist/, as a non-root user.
FROM ${BASE}
ARG UID=10001
# Agents run as this user too (not 65534): the service, not being root, can then delete
# what they write in their workspaces (RemoveAgent delete_workspace), and needs no 0777 ones.
ENV NODE_ENV=production \
    AGENTORCH_LISTEN=0.0.0.0:50051 \
    AGENTORCH_DATA_DIR=/var/lib/agentorch \
    AGENTORCH_CONTAINER_USER=${UID}:${UID}
# The user needs the Docker socket's group at run time: docker run --group-add <gid of the socket>.
RUN echo "agentorch:x:${UID}:${UID}:agentorch:${AGENTORCH_DATA_DIR}:/usr/sbin/nologin" >>/etc/passwd \
    && echo "agentorch:x:${UID}:" >>/etc/group \
    && install -d -m 0700 -o ${UID} -g ${UID} "${AGENTORCH_DATA_DIR}" \
    && ln -s /app/bin/agentorch.js /usr/local/bin/agentorch
WORKDIR /app
# Owned by root: the service cannot change its own code.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
COPY bin bin
COPY deploy/healthcheck.mjs deploy/healthcheck.mjs
USER ${UID}:${UID}
EXPOSE 50051
# GET /healthz on AGENTORCH_LISTEN's port: healthy while the service serves; its answer
# (each part, e.g. "docker SERVING") is in `docker inspect`'s .State.Health.Log.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["node", "/app/deploy/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/dist/src/server/main.js"]
