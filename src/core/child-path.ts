/**
 * `dir/name` by concatenation, for the paths made on every job's start and end. `path.join`
 * normalizes its result piece by piece: in a burst of starts it allocated more than any other
 * function of the server (docs/performance-history.md, twenty-seventh pass). So `dir` must be
 * normalized already (made once by `path.join` or `path.resolve`), and `name` one plain name: no
 * slash, not `.` or `..` (a job id, a file name of jobworker's own).
 */
export function childPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}
