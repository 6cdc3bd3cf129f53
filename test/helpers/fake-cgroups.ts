import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Cgroup hierarchies of another kind of host, in a temporary directory: what the development
 * machine cannot show (controllers mounted together, cgroup files that cannot be read, a kernel
 * without swap accounting). Each is a plain directory standing for a mount point, holding
 * jobworker's directory (`name`) with the files `Cgroups` looks for. A mock of the kernel only
 * where the real one cannot be had here: writes go into plain files, nothing is enforced.
 */
export class FakeCgroupHost {
  readonly root = mkdtempSync(join(tmpdir(), 'jw-fake-cgroups-'));
  readonly #lines: string[] = [];

  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  /**
   * A hierarchy mounted at `<root>/<dir>`: `cgroup2`, or a v1 one with these controllers
   * (`['cpu', 'cpuacct']` for RHEL 7's `cpu,cpuacct`). `files` go into jobworker's directory in it.
   * Returns that directory.
   */
  mount(dir: string, controllers: readonly string[] | 'cgroup2', files: Record<string, string> = {}): string {
    const mountPoint = join(this.root, dir);
    const ours = join(mountPoint, this.name);
    mkdirSync(ours, { recursive: true });
    writeFileSync(join(ours, 'cgroup.procs'), '');
    for (const [file, text] of Object.entries(files)) writeFileSync(join(ours, file), text);
    const id = 30 + this.#lines.length;
    this.#lines.push(
      controllers === 'cgroup2'
        ? `${id} 22 0:${id} / ${mountPoint} rw,relatime - cgroup2 cgroup2 rw`
        : `${id} 22 0:${id} / ${mountPoint} rw,relatime - cgroup cgroup rw,${controllers.join(',')}`,
    );
    return ours;
  }

  /** /proc/self/mountinfo as such a host shows it. */
  get mountinfo(): string {
    return `${this.#lines.join('\n')}\n`;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
