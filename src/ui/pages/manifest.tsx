// A manifest's page (`/r/<name>/-/manifest/<tag or digest>`): the image config, the
// layers and who shares them, an index's children, referrers by artifactType, the
// other tags on the digest, and the manifest itself, pretty-printed.

import type { ManifestView, ReferrerView } from '../data.js';
import { formatBytes, shortDigest } from '../format.js';
import { CopyButton, Layout, type PageContext } from './layout.js';
import { manifestPath, PullCommands, repoPath } from './repositories.js';

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface LayerView extends Descriptor {
  /** Other repositories the viewer may pull that hold the same blob (the first few). */
  sharedWith: string[];
  /** How many more there are. */
  sharedMore: number;
}

/** The fields of an image config that the page shows; anything may be missing or of another type. */
export interface ImageConfig {
  created?: unknown;
  os?: unknown;
  architecture?: unknown;
  config?: { Entrypoint?: unknown; Cmd?: unknown; Env?: unknown; ExposedPorts?: unknown; Labels?: unknown; WorkingDir?: unknown; User?: unknown };
  history?: { created?: unknown; created_by?: unknown; empty_layer?: unknown; comment?: unknown }[];
}

export interface ManifestPageProps {
  ctx: PageContext;
  name: string;
  reference: string;
  manifest: ManifestView;
  json: { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[]; subject?: Descriptor; annotations?: Record<string, unknown> } | undefined;
  config?: ImageConfig;
  /** The config's digest when it was too large to show. */
  configTooLarge?: boolean;
  layers: LayerView[];
  /** The image's size: manifest, config and layers, each blob once (an index: with its children's). */
  imageSize: number;
  referrers: ReferrerView[];
  tags: string[];
  mayDelete: boolean;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(text) : v === undefined || v === null ? [] : [text(v)]);
const entries = (v: unknown): [string, string][] =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, text(x)]) : [];

function platformOf(p: Descriptor['platform']): string {
  return p ? [p.os, p.architecture, p.variant].filter((x) => typeof x === 'string').join('/') : '';
}

function prettyJson(bytes: Buffer): string {
  try {
    return JSON.stringify(JSON.parse(bytes.toString('utf8')), null, 2);
  } catch {
    return bytes.toString('utf8');
  }
}

export function ManifestPage(props: ManifestPageProps) {
  const { ctx, name, manifest, json, config } = props;
  const isTag = !props.reference.includes(':');
  const layerTotal = props.layers.reduce((sum, l) => sum + l.size, 0);
  const byType = new Map<string, ReferrerView[]>();
  for (const r of props.referrers) {
    const key = r.artifactType ?? r.mediaType;
    byType.set(key, [...(byType.get(key) ?? []), r]);
  }
  const cfg = config?.config ?? {};
  return (
    <Layout ctx={ctx} title={`${name}${isTag ? ':' : '@'}${props.reference}`}>
      <p class="crumbs">
        <a href="/">Repositories</a> / <a href={repoPath(name)}>{name}</a> /
      </p>
      <h1>
        {name}
        {isTag ? ':' : '@'}
        {isTag ? props.reference : shortDigest(props.reference)}
      </h1>
      <dl class="kv">
        <dt>Digest</dt>
        <dd class="mono">
          <span id="digest">{manifest.digest}</span> <CopyButton text={manifest.digest} label="Copy the digest" />
        </dd>
        <dt>Media type</dt>
        <dd class="mono">{manifest.mediaType}</dd>
        {json?.config?.mediaType && json.config.mediaType !== 'application/vnd.oci.image.config.v1+json' && json.config.mediaType !== 'application/vnd.docker.container.image.v1+json' && (
          <>
            <dt>Artifact</dt>
            <dd class="mono">{json.config.mediaType}</dd>
          </>
        )}
        <dt>Size</dt>
        <dd>
          <span id="image-size" data-bytes={String(props.imageSize)}>
            {formatBytes(props.imageSize)}
          </span>{' '}
          <span class="muted">(manifest {manifest.size} B{json?.config ? `, config ${json.config.size} B` : ''}, layers {formatBytes(layerTotal)})</span>
        </dd>
        {json?.subject && (
          <>
            <dt>Refers to</dt>
            <dd class="mono">
              <a href={manifestPath(name, json.subject.digest)}>{json.subject.digest}</a>
            </dd>
          </>
        )}
        {props.tags.length > 0 && (
          <>
            <dt>Tags on this digest</dt>
            <dd id="same-digest-tags">
              {props.tags.map((t) => (
                <a class="tag" href={manifestPath(name, t)}>
                  {t}
                </a>
              ))}
            </dd>
          </>
        )}
      </dl>

      <h2>Pull</h2>
      <PullCommands ctx={ctx} name={name} reference={isTag ? props.reference : manifest.digest} />

      {props.mayDelete && (
        <p>
          {isTag && (
            <>
              <a class="button danger" href={`${repoPath(name)}/-/delete?tag=${encodeURIComponent(props.reference)}`}>
                Delete tag {props.reference}
              </a>{' '}
            </>
          )}
          <a class="button danger" href={`${repoPath(name)}/-/delete?digest=${encodeURIComponent(manifest.digest)}`}>
            Delete manifest
          </a>
        </p>
      )}

      {config && (
        <section aria-labelledby="config-h">
          <h2 id="config-h">Image config</h2>
          <dl class="kv" id="config">
            {config.created !== undefined && (
              <>
                <dt>Created</dt>
                <dd>{text(config.created)}</dd>
              </>
            )}
            {(config.os !== undefined || config.architecture !== undefined) && (
              <>
                <dt>Platform</dt>
                <dd>{[text(config.os), text(config.architecture)].filter(Boolean).join('/')}</dd>
              </>
            )}
            <dt>Entrypoint</dt>
            <dd class="mono">{strings(cfg.Entrypoint).join(' ') || <span class="muted">none</span>}</dd>
            <dt>Cmd</dt>
            <dd class="mono">{strings(cfg.Cmd).join(' ') || <span class="muted">none</span>}</dd>
            {cfg.WorkingDir !== undefined && (
              <>
                <dt>Working directory</dt>
                <dd class="mono">{text(cfg.WorkingDir)}</dd>
              </>
            )}
            {cfg.User !== undefined && (
              <>
                <dt>User</dt>
                <dd class="mono">{text(cfg.User)}</dd>
              </>
            )}
            <dt>Env</dt>
            <dd class="mono">
              {strings(cfg.Env).length === 0 ? <span class="muted">none</span> : strings(cfg.Env).map((e) => <div>{e}</div>)}
            </dd>
            <dt>Exposed ports</dt>
            <dd class="mono">{entries(cfg.ExposedPorts).map(([port]) => port).join(', ') || <span class="muted">none</span>}</dd>
            <dt>Labels</dt>
            <dd id="labels">
              {entries(cfg.Labels).length === 0 ? (
                <span class="muted">none</span>
              ) : (
                <dl class="kv">
                  {entries(cfg.Labels).map(([k, v]) => (
                    <>
                      <dt class="mono">{k}</dt>
                      <dd class="mono label-value">{v}</dd>
                    </>
                  ))}
                </dl>
              )}
            </dd>
          </dl>
          {config.history && config.history.length > 0 && (
            <>
              <h2>History</h2>
              <div class="scroll">
                <table id="history">
                  <thead>
                    <tr>
                      <th scope="col">Created</th>
                      <th scope="col">Step</th>
                    </tr>
                  </thead>
                  <tbody>
                    {config.history.map((h) => (
                      <tr>
                        <td>{text(h.created)}</td>
                        <td class="mono">
                          {text(h.created_by) || text(h.comment)}
                          {h.empty_layer === true && <span class="muted"> (no layer)</span>}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )}
        </section>
      )}
      {props.configTooLarge && <p class="notice">The image config is too large to show here.</p>}

      {props.layers.length > 0 && (
        <section aria-labelledby="layers-h">
          <h2 id="layers-h">Layers</h2>
          <div class="scroll">
            <table id="layers">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Digest</th>
                  <th scope="col" class="num">Size</th>
                  <th scope="col">Also in</th>
                </tr>
              </thead>
              <tbody>
                {props.layers.map((l, i) => (
                  <tr>
                    <td>{i + 1}</td>
                    <td class="mono">
                      <span title={`${l.digest} (${l.mediaType ?? ''})`}>{shortDigest(l.digest)}</span>
                    </td>
                    <td class="num layer-size" data-bytes={String(l.size)}>
                      {formatBytes(l.size)}
                    </td>
                    <td>
                      {l.sharedWith.map((r) => (
                        <a class="tag" href={repoPath(r)}>
                          {r}
                        </a>
                      ))}
                      {l.sharedMore > 0 && <span class="muted">and {l.sharedMore} more</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
              <tfoot>
                <tr>
                  <td></td>
                  <td>Total</td>
                  <td class="num" id="layers-total" data-bytes={String(layerTotal)}>
                    {formatBytes(layerTotal)}
                  </td>
                  <td></td>
                </tr>
              </tfoot>
            </table>
          </div>
        </section>
      )}

      {json?.manifests && (
        <section aria-labelledby="children-h">
          <h2 id="children-h">Platforms</h2>
          <div class="scroll">
            <table id="children">
              <thead>
                <tr>
                  <th scope="col">Platform</th>
                  <th scope="col">Digest</th>
                  <th scope="col" class="num">Manifest size</th>
                </tr>
              </thead>
              <tbody>
                {json.manifests.map((m) => (
                  <tr>
                    <td class="platform">{platformOf(m.platform) || <span class="muted">{m.artifactType ?? 'unknown'}</span>}</td>
                    <td class="mono">
                      <a href={manifestPath(name, m.digest)}>{shortDigest(m.digest)}</a>
                    </td>
                    <td class="num">{formatBytes(m.size)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}

      <section aria-labelledby="referrers-h">
        <h2 id="referrers-h">Referrers</h2>
        {byType.size === 0 ? (
          <p class="muted">No signatures, SBOMs or attestations refer to this manifest.</p>
        ) : (
          <div class="cards" id="referrers">
            {[...byType].map(([type, list]) => (
              <div class="card">
                <h3 class="mono">{type}</h3>
                <ul>
                  {list.map((r) => (
                    <li class="mono">
                      <a href={manifestPath(name, r.digest)}>{shortDigest(r.digest)}</a> ({formatBytes(r.size)})
                    </li>
                  ))}
                </ul>
              </div>
            ))}
          </div>
        )}
      </section>

      {json?.annotations && (
        <section aria-labelledby="annotations-h">
          <h2 id="annotations-h">Annotations</h2>
          <dl class="kv">
            {entries(json.annotations).map(([k, v]) => (
              <>
                <dt class="mono">{k}</dt>
                <dd class="mono">{v}</dd>
              </>
            ))}
          </dl>
        </section>
      )}

      <h2>Manifest</h2>
      <p>
        <a href={`${repoPath(name)}/-/raw/${manifest.digest}`}>Raw bytes</a>{' '}
        <span class="muted">({manifest.size} bytes, exactly as pushed)</span>
      </p>
      <pre class="json" id="manifest-json">{prettyJson(manifest.bytes)}</pre>
    </Layout>
  );
}

