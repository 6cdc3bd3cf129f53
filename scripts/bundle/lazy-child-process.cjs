// Stands in for node:child_process inside the CLI bundle (scripts/bundle-cli.ts). commander
// requires it at load for stand-alone executable subcommands, which jobworker has none of;
// loading it (with net, dgram and their streams) cost every command several milliseconds.
// Anything used from it is loaded on first use.
'use strict';
module.exports = new Proxy(
  {},
  {
    get(_target, key) {
      return process.getBuiltinModule('node:child_process')[key];
    },
  },
);
