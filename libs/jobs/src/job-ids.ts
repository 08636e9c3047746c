const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/**
 * Every id a job of our queues can have: a producer's UUID (`JobClient.enqueue`), a pattern
 * slice's `<uuid>-slice-<n>` (slices.ts), a scheduler's `repeat:<scheduler id>:<tick millis>`
 * (BullMQ job schedulers; legacy repeatables put an md5 there), and BullMQ's own counter for a job
 * added without an id (by hand, or from the dashboard).
 */
const JOB_ID = new RegExp(`^(?:${UUID}(?:-slice-\\d{1,5})?|repeat:[\\w.-]{1,200}:\\d{1,16}|\\d{1,20})$`);

/**
 * Whether `id` can name a job. Anything else is no job, and must not be looked up: BullMQ reads
 * `<prefix>:<queue>:<id>` as the job's hash, so an id such as `stalled-check`, `events`, `wait` or
 * `<id>:lock` reads one of the queue's own keys, and Redis answers WRONGTYPE (a 500 in the
 * dashboard: issue 9.4).
 */
export function isJobId(id: string): boolean {
  return JOB_ID.test(id);
}
