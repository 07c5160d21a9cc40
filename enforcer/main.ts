// wren-enforcer: the node agent and the operator's CLI.
import { Command, Option } from 'commander'
import { agentConfig, DEFAULT_HEALTH_PORT, DEFAULT_RUN_DIR, parseDuration, resolveNodeName, type RunFlags } from './config.ts'
import { controlGet } from './control.ts'
import { printStatus } from './status.ts'
import pkg from '../package.json' with { type: 'json' }

// The agent, the writer and the installer load only when their command runs:
// `status` is called in loops by scripts and must start fast (the agent pulls
// in @kubernetes/client-node).

const NODE_NAME_HELP = 'this node (default: env NODE_NAME, else the hostname in lowercase, as kubelet names its Node)'

const program = new Command('wren-enforcer').description('wren node agent: NetworkPolicy → per-workload iptables chains and ipsets').version(pkg.version)

program
  .command('run')
  .description('run the node agent in the foreground')
  .option('--manifests <dir>', 'watch a folder of YAML (Namespace, Pod, NetworkPolicy) instead of a cluster')
  .option('--kubeconfig <file>', 'learn the cluster from the Kubernetes API through this kubeconfig')
  .option('--in-cluster', 'learn the cluster from the Kubernetes API with the pod service account')
  .option('--state-dir <dir>', 'the plugin state dir holding workload records', '/var/lib/wren')
  .option('--run-dir <dir>', 'where the control socket lives', DEFAULT_RUN_DIR)
  .option('--node-name <name>', NODE_NAME_HELP)
  .option('--iface-prefix <prefix>', 'host interface prefix of workloads', 'wren')
  .option('--accept-mark <bit>', 'the mark bit meaning "policy accepted"', '0x10000')
  .option('--set-max-elem <n>', 'entries a set may hold (ipset maxelem); a set that would hold more is left empty and reported', '1048576')
  .option('--union-above <n>', 'peers of one port group matched one rule each; more share one union set (0: always a union)', '8')
  .addOption(new Option('--workload-to-host <mode>', 'pod → own node traffic').choices(['accept', 'policy']).default('accept'))
  .addOption(new Option('--iptables-backend <mode>', 'iptables backend (auto: the one kubelet/kube-proxy use)').choices(['auto', 'nft', 'legacy']).default('auto'))
  .addOption(new Option('--log-level <level>').choices(['debug', 'info', 'warn', 'error']).default('info'))
  .option('--metrics-port <port>', 'serve Prometheus metrics on this TCP port (also on the control socket at /metrics)')
  .option('--health-port <port>', '/healthz and /readyz for the kubelet on 127.0.0.1:PORT only (also on the control socket)', String(DEFAULT_HEALTH_PORT))
  .option('--ready-grace <duration>', 'how long a source may fail to reach the Kubernetes API before /readyz says not ready', '60s')
  .addOption(new Option('--overlay <mode>', "routes to other nodes' pods: auto (host-gw to nodes on a connected subnet, VXLAN to the rest), vxlan (always), host-gw (never VXLAN)").choices(['auto', 'vxlan', 'host-gw']).default('auto'))
  .addOption(new Option('--masquerade <bool>', 'masquerade pod traffic leaving the cluster pod ranges (a value, for settings from a ConfigMap)').choices(['true', 'false']).default('true'))
  .option('--no-masquerade', 'the same as --masquerade false')
  .option('--cluster-cidr <cidr...>', "pod ranges of the cluster besides the Nodes' spec.podCIDRs, also comma-separated (never masqueraded between pods)")
  .action(async (flags: RunFlags) => {
    const { config, problems } = agentConfig(flags)
    if (problems.length) fail(`invalid configuration:\n  ${problems.join('\n  ')}`)
    const { runAgent } = await import('./run.ts')
    await runAgent(config)
  })

program
  .command('status')
  .description('what the running agent knows and what is programmed')
  .option('--run-dir <dir>', 'the agent run dir', DEFAULT_RUN_DIR)
  .option('--wait-synced', 'return once every change present in the sources now is in the kernel')
  .option('--timeout <duration>', 'how long --wait-synced waits', '30s')
  .option('--json', 'print JSON')
  .action(async (o: { runDir: string; waitSynced?: boolean; timeout: string; json?: boolean }) => {
    if (o.waitSynced) {
      const ms = parseDuration(o.timeout)
      const r = await controlGet(o.runDir, `/synced?timeoutMs=${ms}`, ms + 5000)
      if (r.code !== 200) fail(`not synced after ${o.timeout}`)
    }
    const r = await controlGet(o.runDir, '/status')
    if (o.json) process.stdout.write(JSON.stringify(r.body, null, 2) + '\n')
    else printStatus(r.body)
  })

program
  .command('show')
  .description("one workload's chains and the sets they match, with counters, and what each set holds")
  .argument('<target>', 'namespace/pod or host interface name')
  .option('--state-dir <dir>', 'the plugin state dir holding workload records', '/var/lib/wren')
  .option('--run-dir <dir>', "the agent's run dir (it names what each set holds)", DEFAULT_RUN_DIR)
  .addOption(new Option('--iptables-backend <mode>').choices(['auto', 'nft', 'legacy']).default('auto'))
  .action(async (target: string, o: { stateDir: string; runDir: string; iptablesBackend: 'auto' | 'nft' | 'legacy' }) => {
    const [{ exec }, { createLogger, stderrSink }, { show }] = await Promise.all([import('../shared/exec.ts'), import('../shared/log.ts'), import('./inspect.ts')])
    const log = createLogger(stderrSink(), 'error')
    process.stdout.write(await show({ target, stateDir: o.stateDir, runDir: o.runDir, exec, log, backend: o.iptablesBackend }))
  })

program
  .command('cleanup')
  .description('remove every chain, rule, set and route wren owns (and its VXLAN device), and nothing else')
  .addOption(new Option('--iptables-backend <mode>').choices(['auto', 'nft', 'legacy']).default('auto'))
  .action(async (o: { iptablesBackend: 'auto' | 'nft' | 'legacy' }) => {
    const [{ exec }, { createLogger, stderrSink }, { Dataplane }] = await Promise.all([
      import('../shared/exec.ts'),
      import('../shared/log.ts'),
      import('./dataplane/writer.ts'),
    ])
    const log = createLogger(stderrSink(), 'info', { component: 'wren-enforcer' })
    await new Dataplane({ exec, log, backend: o.iptablesBackend }).cleanup()
    const { NetlinkRoutes } = await import('./network/kernel.ts')
    const routes = new NetlinkRoutes(log)
    const removed = await routes.cleanup()
    routes.stop()
    if (removed) log.info('removed wren routes and the VXLAN device', { objects: removed })
  })

program
  .command('install-cni')
  .description('install the plugin (wren, its runtime and bundle under wren.d/) and the conflist, each file atomically; rerun to upgrade')
  .requiredOption('--bin-dir <dir>', 'CNI plugin directory, e.g. /opt/cni/bin')
  .requiredOption('--conf-dir <dir>', 'CNI config directory, e.g. /etc/cni/net.d')
  .option('--pod-cidr <cidr...>', "this node's pod ranges for the built-in IPAM, one per family; overrides the Node's spec.podCIDRs")
  .option('--kubeconfig <file>', "take the pod ranges from this node's spec.podCIDRs, through this kubeconfig")
  .option('--in-cluster', "take the pod ranges from this node's spec.podCIDRs, with the pod service account")
  .option('--node-name <name>', NODE_NAME_HELP)
  .option('--wait-timeout <duration>', 'how long to wait for the Node and its pod CIDRs before giving up (writing nothing)', '5m')
  .option('--mtu <n>', "pod MTU (default: the MTU of the default route's interface minus 50, room for a VXLAN header)")
  .option('--state-dir <dir>', "the agent's state dir, when not /var/lib/wren (written into the conflist: the plugin keeps its records there)")
  .option('--run-dir <dir>', "the agent's run dir, when not /var/run/wren (written into the conflist: the plugin finds the agent's socket there)")
  .action(async (o: InstallFlags) => {
    const [{ installCni }, { agentDirProblems, mtuProblems }] = await Promise.all([import('../cni/install.ts'), import('../cni/install/conflist.ts')])
    if (o.kubeconfig && o.inCluster) fail('install-cni: give --kubeconfig FILE or --in-cluster, not both')
    // checked before any wait for the Node: a wait must not end in a flag error
    const mtu = o.mtu === undefined ? undefined : Number(o.mtu)
    const agentDirs = { stateDir: o.stateDir, runDir: o.runDir }
    const problems = [...(mtu === undefined ? [] : mtuProblems(mtu, []).map((p) => `--mtu ${o.mtu}: ${p}`)), ...agentDirProblems(agentDirs)]
    if (problems.length) fail(`install-cni: ${problems.join('; ')}`)
    const timeoutMs = parseDuration(o.waitTimeout)
    const say = (line: string) => process.stderr.write(`wren-enforcer install-cni: ${line}\n`)
    let podCidrs = o.podCidr
    if (!podCidrs) {
      if (!o.kubeconfig && !o.inCluster) fail("install-cni: give --pod-cidr CIDR, or --kubeconfig FILE / --in-cluster to take this node's spec.podCIDRs")
      const nodeName = resolveNodeName(o.nodeName)
      const { waitForNodePodCidrs } = await import('../cni/install/node-cidrs.ts')
      podCidrs = await waitForNodePodCidrs({ kubeconfig: o.kubeconfig, inCluster: o.inCluster, nodeName, timeoutMs, say })
      say(`node ${nodeName}: pod CIDRs ${podCidrs.join(', ')}`)
    }
    const out = await installCni({ binDir: o.binDir, confDir: o.confDir, podCidrs, mtu, agentDirs })
    for (const l of out.left) say(`left ${l.path}: ${l.why}`)
    process.stdout.write(`${JSON.stringify(out)}\n`)
  })

program
  .command('uninstall-cni')
  .description('remove exactly the files install-cni wrote (listed in <bin-dir>/wren.d/manifest.json), and nothing else')
  .requiredOption('--bin-dir <dir>', 'CNI plugin directory, e.g. /opt/cni/bin')
  .requiredOption('--conf-dir <dir>', 'CNI config directory, e.g. /etc/cni/net.d')
  .action(async (o: { binDir: string; confDir: string }) => {
    const { uninstallCni } = await import('../cni/install.ts')
    const out = await uninstallCni({ binDir: o.binDir, confDir: o.confDir })
    for (const l of out.left) process.stderr.write(`wren-enforcer uninstall-cni: left ${l.path}: ${l.why}\n`)
    process.stdout.write(`${JSON.stringify(out)}\n`)
  })

interface InstallFlags {
  binDir: string
  confDir: string
  podCidr?: string[]
  kubeconfig?: string
  inCluster?: boolean
  nodeName?: string
  waitTimeout: string
  mtu?: string
  stateDir?: string
  runDir?: string
}

function fail(msg: string): never {
  process.stderr.write(`wren-enforcer: ${msg}\n`)
  process.exit(1)
}

program.parseAsync(process.argv).catch((e: Error) => fail(e.message))
