/**
 * The output the capture and catch-up scenarios write: 256 MiB by default so that each stays
 * well under a minute on the 2-core machine; --full writes the 1 GiB of the issue.
 */
export const OUTPUT_SIZES = {
  default: { headArg: '256M', bytes: 256 * 1024 ** 2 },
  full: { headArg: '1G', bytes: 1024 ** 3 },
} as const;
