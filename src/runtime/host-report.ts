import type { HostCapabilities, NamespaceKind } from './host-capabilities.ts';

/**
 * What each feature of jobworker gets on a host, in words: `jobworker doctor` prints it
 * (docs/isolation.md, "Guarantees by host").
 */

/** One feature and how this host provides it. */
export interface FeatureReport {
  /** A stable key (`stop`, `pause`, `cpuGroup`, `limit.memory`, `namespace.pid`, `runAs`). */
  readonly feature: string;
  /** True when the full guarantee holds here. */
  readonly available: boolean;
  /** How it is provided (`cgroup v2 cgroup.kill`), or the weaker fallback that applies. */
  readonly how: string;
  /** What is missing for the full guarantee, when something is. */
  readonly missing?: string;
}

const NAMESPACE_USE: Record<NamespaceKind, string> = {
  pid: 'isolation.pid (the job sees only its own processes)',
  net: 'isolation.network "none" (no network but its own loopback)',
  mnt: 'isolation.mount (private /tmp, read-only and hidden paths; needed by isolation.pid)',
  uts: 'isolation.hostname (its own host name)',
  user: 'not used by jobworker (namespaces are created as root)',
};

/** Every feature, in the order `jobworker doctor` prints them. */
export function reportFeatures(host: HostCapabilities): FeatureReport[] {
  const { cgroups } = host;
  const freezerV1 = cgroups.v1.find((h) => h.controller === 'freezer' && h.writable);
  /** Jobs have cgroups at all here (what `Cgroups.mode` is not `none` for). */
  const contained = cgroups.v2Writable || freezerV1 !== undefined;
  const out: FeatureReport[] = [];
  if (cgroups.v2Writable && cgroups.v2Kill) {
    out.push({ feature: 'stop', available: true, how: `cgroup v2 cgroup.kill under ${cgroups.v2Parent}` });
  } else if (contained) {
    out.push({
      feature: 'stop',
      available: true,
      how: cgroups.v2Writable
        ? `cgroup v2 under ${cgroups.v2Parent} (frozen, then killed pid by pid)`
        : `cgroup v1 freezer at ${freezerV1?.mount} (frozen, then killed pid by pid)`,
    });
  } else {
    out.push({
      feature: 'stop',
      available: false,
      how: 'SIGTERM, then SIGKILL to the process group',
      missing: noCgroup(host),
    });
  }
  const canFreeze = (cgroups.v2Writable && cgroups.v2Freeze) || freezerV1 !== undefined;
  out.push(
    canFreeze
      ? {
          feature: 'pause',
          available: true,
          how: cgroups.v2Writable && cgroups.v2Freeze ? 'cgroup v2 cgroup.freeze' : 'cgroup v1 freezer',
        }
      : {
          feature: 'pause',
          available: false,
          how: 'SIGSTOP/SIGCONT to the process group',
          missing: noCgroup(host),
        },
  );
  // The jobs' CPU group (docs/isolation.md, "The server and its jobs share the CPU as two").
  const cpu = host.controllers.find((c) => c.name === 'cpu');
  const cpuV1 = cgroups.v1.find((h) => h.controller === 'cpu');
  out.push(
    cpu?.via && contained
      ? {
          feature: 'cpuGroup',
          available: true,
          how:
            cpu.via === 'v2'
              ? `cgroup v2 cpu: the spawner and its wrappers in jobworker/spawner beside the jobs, under ${cgroups.v2Parent}`
              : `cgroup v1 cpu: the spawner and the jobs it forks in ${cpuV1?.mount ?? '?'}/jobworker`,
        }
      : {
          feature: 'cpuGroup',
          available: false,
          how: "each job's process competes with the server's threads one for one",
          missing: contained ? 'no cpu controller jobworker may use' : noCgroup(host),
        },
  );
  for (const controller of host.controllers) {
    if (controller.name === 'freezer') continue;
    out.push(
      controller.via
        ? {
            feature: `limit.${controller.name}`,
            available: true,
            how: `cgroup ${controller.via} ${controller.name} controller`,
          }
        : {
            feature: `limit.${controller.name}`,
            available: false,
            how: 'refused at submit',
            missing: `no ${controller.name} controller jobworker may use (cgroup v2 at ${cgroups.v2Parent ?? 'none'} offers: ${cgroups.v2Controllers.join(' ') || 'nothing'}; no writable v1 ${controller.name === 'io' ? 'blkio' : controller.name} hierarchy)`,
          },
    );
  }
  for (const [kind, support] of Object.entries(host.namespaces) as [
    NamespaceKind,
    HostCapabilities['namespaces'][NamespaceKind],
  ][]) {
    out.push(
      support.creatable
        ? { feature: `namespace.${kind}`, available: true, how: NAMESPACE_USE[kind] }
        : {
            feature: `namespace.${kind}`,
            available: false,
            how: kind === 'user' ? NAMESPACE_USE[kind] : `${NAMESPACE_USE[kind]}: refused at submit`,
            missing: support.why ?? 'unavailable',
          },
    );
  }
  out.push(
    host.runAs.switchAccounts
      ? {
          feature: 'runAs',
          available: true,
          how: "root: each job runs as its owner's OS account (or a pool uid)",
        }
      : {
          feature: 'runAs',
          available: false,
          how: "every job runs as the server's own account",
          missing: host.runAs.why ?? 'not root',
        },
  );
  return out;
}

function noCgroup(host: HostCapabilities): string {
  const { cgroups } = host;
  if (!cgroups.v2Mount && cgroups.v1.length === 0) return 'no cgroup hierarchy is mounted';
  if (host.uid !== 0)
    return `no cgroup jobworker may write: run as root, or as a systemd service with Delegate=yes (its cgroup ${cgroups.v2Parent ?? '?'} is not writable)`;
  return 'no writable cgroup v2 hierarchy and no v1 freezer';
}
