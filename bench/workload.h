/*  bench/workload: the records every benchmark sends, and the small tools
 *  the benchmarks share (clock, percentiles, peak RSS, result lines).
 *
 *  Record number `serial` is a pure function of (seed, serial): any process
 *  or thread can make any record without the others, and every benchmark
 *  of one run (amity, the ZeroMQ limit, the LMDB ceiling, the Redis peer)
 *  carries exactly the same records. Records are like the sample data of
 *  amity-gen: every kind (activities most often, organisations founded
 *  least), ~40 countries weighted toward Viet Nam's main partners, dates
 *  2015-2024, amounts in USD, EUR, JPY, KRW and VND, Vietnamese notes.
 *  Offices take turns: record `serial` belongs to office serial % n_offices,
 *  so a thread per office (one libamity client each, as real offices have)
 *  takes serials k, k + n, k + 2n, ...
 */
#ifndef AMITY_BENCH_WORKLOAD_H
#define AMITY_BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"
#include "amity/record.h"

#define BENCH_OFFICES_MAX     64
#define BENCH_OFFICES_DEFAULT 20
#define BENCH_SEED_DEFAULT    20240601u

typedef struct {
    uint64_t seed;         /**< generator seed */
    uint32_t n_offices;    /**< offices taking turns, 1..BENCH_OFFICES_MAX */
} bench_workload_t;

/*  n_offices 0 = BENCH_OFFICES_DEFAULT; clamped to BENCH_OFFICES_MAX. */
void bench_workload_init(bench_workload_t *w, uint64_t seed, uint32_t n_offices);

/*  The office index (0..n_offices) of record serial, and an office's id
 *  ("hoi-viet-my", ... then "office-21", ...). Borrowed, static. */
uint32_t bench_workload_office_of(const bench_workload_t *w, uint64_t serial);
const char *bench_workload_office_name(uint32_t office);

/*  Fills rec with record `serial` as amity_record_validate would give it
 *  (a checked record) and returns its office id (static). */
const char *bench_workload_record(const bench_workload_t *w, uint64_t serial,
                                  amity_record_t *rec);

/*  Appends record serial's canonical encoding (amity_record_encode) to
 *  out; *office (may be NULL) gets its office id. Returns 0 or AMITY_E*. */
int bench_workload_encode(const bench_workload_t *w, uint64_t serial, amity_buf_t *out,
                          const char **office);

/*  Encodes one submit message carrying n records serial, serial + step,
 *  ... (tags 1..n) into out (reset first). Returns 0 or AMITY_E*. */
int bench_workload_submit_msg(const bench_workload_t *w, uint64_t serial, uint64_t step,
                              size_t n, const char *office, amity_buf_t *out);

/*  Checks that the generator's tables hold only codes amity accepts and that
 *  a sample of records round-trips through amity_record_validate. Prints
 *  what is wrong and returns -1, or 0. */
int bench_workload_selftest(const bench_workload_t *w);

/*  ------------------------------------------------------------------
 *  Shared tools
 */

/*  Monotonic clock, seconds and nanoseconds. */
double bench_now(void);
int64_t bench_now_ns(void);

/*  Sleeps until the monotonic time t_ns (no-op when past). */
void bench_sleep_until_ns(int64_t t_ns);

/*  Sorts v[0..n) in place and returns the p-quantile (0 <= p <= 1) by the
 *  nearest-rank rule; 0 when n is 0. */
double bench_percentile(double *v, size_t n, double p);

/*  A growable array of latency samples (seconds). */
typedef struct {
    double *v;   /**< samples */
    size_t n;    /**< used */
    size_t cap;  /**< allocated */
} bench_samples_t;

int bench_samples_add(bench_samples_t *s, double x);
void bench_samples_clear(bench_samples_t *s);

/*  Prints "name_p50_ms=.. name_p99_ms=.. name_p999_ms=.. name_max_ms=.. name_n=.." */
void bench_print_latency(const char *name, bench_samples_t *s);

/*  VmHWM (peak resident set) of a process in KiB; pid 0 = this one; -1 when
 *  unknown. */
long bench_vmhwm_kib(int pid);

/*  Parses a positive integer with an optional k/m suffix ("200k", "1m",
 *  "1e6"); returns false when s is not one. */
bool bench_parse_count(const char *s, uint64_t *out);

#endif
