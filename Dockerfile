# Berth's server image: multi-stage (compilers stay in the build stage), non-root,
# data in a volume, a health check on /readyz.
#
#   docker build -t berth .
#   docker run -d -p 5000:5000 -v berth-data:/var/lib/berth berth
#
# Settings come from BERTH_* variables or a config file (-v ./berth.yaml:/etc/berth/berth.yaml:ro
# -e BERTH_CONFIG=/etc/berth/berth.yaml); see deploy/berth.yaml.

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS build
# better-sqlite3 compiles its native addon from source.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts off: `prepare` would compile the TypeScript before it is copied in.
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json ./
COPY src ./src
COPY storage ./storage
COPY auth ./auth
COPY bench ./bench
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production \
    BERTH_LISTEN=0.0.0.0:5000 \
    BERTH_DATA=/var/lib/berth \
    BERTH_LOG_FORMAT=json
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
# The web UI's stylesheet, script and icon (src/ui/assets.ts finds them here from dist/).
COPY src/ui/assets ./src/ui/assets
# The image's `node` user (uid 1000) owns the data directory and nothing else.
RUN mkdir -p /var/lib/berth && chown node:node /var/lib/berth
USER node
VOLUME ["/var/lib/berth"]
EXPOSE 5000
# Ready = database answers, data directory writable, disk not full. With TLS on, point
# BERTH_HEALTHCHECK_URL at https://... (the check trusts any certificate on loopback).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "process.env.NODE_TLS_REJECT_UNAUTHORIZED='0';fetch(process.env.BERTH_HEALTHCHECK_URL||'http://127.0.0.1:5000/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--max-semi-space-size=4", "--heap-growing-percent=100", "--expose-gc", "/app/dist/src/cli/main.js"]
CMD ["serve"]
