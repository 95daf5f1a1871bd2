// Latency buckets "meshtune-v1": keep identical to controller/model/histogram.ts
// (a unit test compares them). Upper bounds in microseconds; the last bucket is overflow.
export const BOUNDS_ID = "meshtune-v1";
export const BOUNDS_US: u64[] = [
  100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000, 2000000, 5000000, 10000000,
];
export const BUCKETS: i32 = 17;

export function bucketOf(us: u64): i32 {
  let i = 0;
  while (i < BOUNDS_US.length && us > BOUNDS_US[i]) i++;
  return i;
}
