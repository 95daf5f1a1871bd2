// Latency histogram "meshtune-v1": a fixed 1-2-5 log scale in microseconds, shared
// with the Wasm filter (filter/assembly/bounds.ts) so histograms merge bucket by bucket.
// Bucket i counts samples <= BOUNDS_US[i]; the last bucket is the overflow.
export const BOUNDS_ID = "meshtune-v1";
export const BOUNDS_US = [
  100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
  5_000_000, 10_000_000,
];
export const BUCKETS = BOUNDS_US.length + 1;

export function bucketOf(us: number): number {
  let i = 0;
  while (i < BOUNDS_US.length && us > BOUNDS_US[i]) i++;
  return i;
}

/** Quantile estimate (upper bound of the bucket holding it), in microseconds. */
export function quantileUs(buckets: number[], q: number): number {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  const rank = Math.ceil(total * q);
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= rank) return i < BOUNDS_US.length ? BOUNDS_US[i] : Infinity;
  }
  return Infinity;
}

/** Quantile with linear interpolation inside the bucket holding it; bucket i spans [lo(i), hi(i)]. */
function interpolatedQuantile(
  buckets: number[],
  q: number,
  lo: (i: number) => number,
  hi: (i: number) => number,
  past: number,
): number {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  const rank = total * q;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    if (buckets[i] && seen + buckets[i] >= rank)
      return lo(i) + (hi(i) - lo(i)) * Math.max(0, (rank - seen) / buckets[i]);
    seen += buckets[i];
  }
  return past;
}

/** meshtune-v1 quantile estimate (µs), interpolated; the overflow bucket reports its lower bound. */
export function quantileInterpUs(buckets: number[], q: number): number {
  const lo = (i: number) => (i === 0 ? 0 : BOUNDS_US[i - 1]);
  return interpolatedQuantile(
    buckets,
    q,
    lo,
    (i) => (i < BOUNDS_US.length ? BOUNDS_US[i] : lo(i)),
    BOUNDS_US[BOUNDS_US.length - 1],
  );
}

/** Quantile of a log2-µs histogram (bpf/tcpstats.h: slot 0 < 1 µs, slot i in [2^(i-1), 2^i)), interpolated. */
export function quantileLog2Us(slots: number[], q: number): number {
  return interpolatedQuantile(
    slots,
    q,
    (i) => (i === 0 ? 0 : 2 ** (i - 1)),
    (i) => (i === 0 ? 1 : 2 ** i),
    2 ** (slots.length - 1),
  );
}
