// What a runtime hands a CNI plugin for one attachment. Its own module, free of
// TypeScript-only syntax, because cluster.ts (loaded inside pods by Node's
// strip-only TypeScript support) needs it too.

export interface Attachment {
  containerId: string
  netns: string
  ifname: string
  /** CNI_ARGS pairs, e.g. K8S_POD_NAMESPACE. */
  args?: Record<string, string>
  /** Values for plugins' declared capabilities (e.g. portMappings), passed as runtimeConfig. */
  capabilityArgs?: Record<string, unknown>
}

/** The environment for one plugin run (`extra` adds or overrides). */
export function cniEnv(command: string, att: Partial<Attachment>, cniPath: readonly string[], extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: att.containerId ?? '',
    CNI_NETNS: att.netns ?? '',
    CNI_IFNAME: att.ifname ?? '',
    CNI_ARGS: Object.entries(att.args ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(';'),
    CNI_PATH: cniPath.join(':'),
    ...extra,
  }
}
