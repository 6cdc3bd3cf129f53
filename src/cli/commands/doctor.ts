import type { Command } from 'commander';
import { type HostCapabilities, probeHost } from '../../runtime/host-capabilities.ts';
import { type FeatureReport, reportFeatures } from '../../runtime/host-report.ts';
import { spawnerPath } from '../../runtime/spawner-path.ts';
import { type CliContext, printJson } from '../cli-context.ts';
import { writeTo } from '../output-writer.ts';

/**
 * `doctor [--json]`: what this host supports for jobworker (cgroups, namespaces, run-as, limits)
 * and, per feature, what is missing. Runs on the host itself, not through a server. Exits 1 only
 * when the setup is broken (no spawner: no job can start); a missing feature is not broken.
 */
export function registerDoctor(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .summary('show what this host supports: cgroups, namespaces, run-as, limits')
    .description(
      'Probe this host as the server would (run it as the account the server runs as): cgroup ' +
        'versions and controllers, the namespaces jobworker can create, whether jobs can run as ' +
        'their owners, and per feature what is missing for its full guarantee (docs/isolation.md). ' +
        'Exits 1 only when no job could start at all.',
    )
    .option('--json', 'print one JSON document: {host, features, broken}')
    .action(async (_options: unknown, command: Command) => {
      // --json may come before the command name too, as with every command.
      const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
      let spawner: string | undefined;
      let broken: string | undefined;
      try {
        spawner = spawnerPath();
      } catch (err) {
        broken = (err as Error).message;
      }
      const host = await probeHost(spawner ? { spawner } : {});
      if (
        !broken &&
        Object.values(host.namespaces).every((ns) => ns.why?.startsWith('the spawner could not'))
      ) {
        broken = host.namespaces.pid.why;
      }
      const features = reportFeatures(host);
      if (broken) ctx.exitCode = 1;
      if (json) return printJson(ctx, { host, features, ...(broken ? { broken } : {}) });
      await writeTo(ctx.stdout, formatDoctor(host, features, broken));
    });
}

/** The human form: the host, then one line per feature, a missing part indented under it. */
export function formatDoctor(
  host: HostCapabilities,
  features: readonly FeatureReport[],
  broken?: string,
): string {
  const { cgroups } = host;
  const lines = [
    `account:     uid ${host.uid}${host.uid === 0 ? ' (root)' : ''}`,
    `cgroup v2:   ${cgroups.v2Mount ? `${cgroups.v2Mount}, jobworker's parent ${cgroups.v2Parent ?? 'none'} (${cgroups.v2Writable ? 'writable' : 'not writable'}); controllers: ${cgroups.v2Controllers.join(' ') || 'none'}${cgroups.v2Kill ? '; cgroup.kill' : ''}` : 'not mounted'}`,
    `cgroup v1:   ${cgroups.v1.length > 0 ? cgroups.v1.map((h) => `${h.controller}${h.writable ? '' : ' (read-only)'}`).join(' ') : 'none'}`,
    `namespaces:  ${Object.entries(host.namespaces)
      .map(([kind, ns]) => `${kind} ${ns.creatable ? 'yes' : 'no'}`)
      .join(', ')}`,
    '',
  ];
  for (const feature of features) {
    lines.push(`${feature.available ? 'ok     ' : 'MISSING'} ${feature.feature.padEnd(16)} ${feature.how}`);
    if (feature.missing) lines.push(`        ${''.padEnd(16)} missing: ${feature.missing}`);
  }
  if (broken) lines.push('', `BROKEN: ${broken}`);
  return `${lines.join('\n')}\n`;
}
