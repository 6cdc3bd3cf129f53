import type { Admission } from './job-store.ts';

/** Thrown out of an admission's transaction to roll it back: the admission was only a preview. */
export class AdmissionPreview {
  readonly admission: Admission;

  constructor(admission: Admission) {
    this.admission = admission;
  }
}

/**
 * The admission `work` made, then threw as an `AdmissionPreview` so that its transaction rolled
 * back (`JobStore.previewAdmission`); what it threw otherwise.
 */
export async function previewed(work: Promise<unknown>): Promise<Admission> {
  try {
    await work;
  } catch (err) {
    if (err instanceof AdmissionPreview) return err.admission;
    throw err;
  }
  throw new Error('An admission meant as a preview was committed');
}
