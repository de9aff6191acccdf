// Cost of building a Maglev table (lb/maglev.h), against the floor cost of
// touching M slots: allocating an M-slot table and filling it round-robin
// with the N backend indices. Each maglev_table row reports its time and the
// ratio to the baseline of the same M and N measured in this run
// (counter vs_baseline), plus the cost per slot. Times are CPU time of the
// running thread, so that other load on the machine inflates them less.
#include <benchmark/benchmark.h>
#include <time.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lb/maglev.h"

namespace {

// CPU seconds used by this thread so far.
double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::vector<stratus::lb::MaglevBackend> backends(int n, bool weighted) {
  std::vector<stratus::lb::MaglevBackend> v;
  for (int i = 0; i < n; ++i) {
    v.push_back({"backend-" + std::to_string(i), weighted ? 1u + i % 7 : 1u});
  }
  return v;
}

std::vector<std::uint32_t> round_robin(std::uint32_t m, std::uint32_t n) {
  std::vector<std::uint32_t> table(m);
  std::uint32_t b = 0;
  for (std::uint32_t s = 0; s < m; ++s) {
    table[s] = b;
    if (++b == n)
      b = 0;
  }
  return table;
}

// Seconds per baseline fill, by (M, N), as measured by BM_Baseline.
std::map<std::pair<std::int64_t, std::int64_t>, double> &baseline_seconds() {
  static std::map<std::pair<std::int64_t, std::int64_t>, double> m;
  return m;
}

double measure_baseline(std::uint32_t m, std::uint32_t n) {
  double t0 = cpu_now();
  int runs = 0;
  do {
    auto t = round_robin(m, n);
    benchmark::DoNotOptimize(t.data());
    ++runs;
  } while (cpu_now() - t0 < 0.2);
  return (cpu_now() - t0) / runs;
}

void report(benchmark::State &state, double t0) {
  const auto m = static_cast<std::uint32_t>(state.range(0));
  const auto n = static_cast<std::uint32_t>(state.range(1));
  double per_run = (cpu_now() - t0) / static_cast<double>(state.iterations());
  auto key = std::make_pair(state.range(0), state.range(1));
  auto it = baseline_seconds().find(key);
  double base = it != baseline_seconds().end() ? it->second : measure_baseline(m, n);
  state.counters["vs_baseline"] = per_run / base;
  state.counters["ns_per_slot"] = per_run * 1e9 / m;
}

void BM_Baseline(benchmark::State &state) {
  const auto m = static_cast<std::uint32_t>(state.range(0));
  const auto n = static_cast<std::uint32_t>(state.range(1));
  double t0 = cpu_now();
  for (auto _ : state) {
    auto t = round_robin(m, n);
    benchmark::DoNotOptimize(t.data());
    benchmark::ClobberMemory();
  }
  double per_run = (cpu_now() - t0) / static_cast<double>(state.iterations());
  baseline_seconds()[{state.range(0), state.range(1)}] = per_run;
  state.counters["ns_per_slot"] = per_run * 1e9 / m;
}

template <bool kWeighted>
void BM_MaglevTable(benchmark::State &state) {
  const auto m = static_cast<std::uint32_t>(state.range(0));
  const auto b = backends(static_cast<int>(state.range(1)), kWeighted);
  double t0 = cpu_now();
  for (auto _ : state) {
    auto t = stratus::lb::maglev_table(b, m);
    benchmark::DoNotOptimize(t.data());
    benchmark::ClobberMemory();
  }
  report(state, t0);
}

void sizes(benchmark::internal::Benchmark *b) {
  b->ArgNames({"M", "N"});
  b->Args({65537, 10})->Args({65537, 100})->Args({65537, 1000})->Args({655373, 1000});
  b->Unit(benchmark::kMicrosecond);
}

// Baselines first: each maglev row divides by the baseline of its M and N.
BENCHMARK(BM_Baseline)->Apply(sizes);
BENCHMARK(BM_MaglevTable<false>)->Name("BM_MaglevTable/equal")->Apply(sizes);
BENCHMARK(BM_MaglevTable<true>)->Name("BM_MaglevTable/weights_1_to_7")->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
