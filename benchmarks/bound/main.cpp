// count_bound: times the bare counting loops of bound.hpp on the given codes and queries.
//
//   count_bound CODES QUERIES CODE_SIZE NQ THREADS ROUNDS [ISA...]
//   count_bound --ceiling
//
// CODES and QUERIES are raw files of packed codes (CODE_SIZE bytes each). The work is shared as
// the engine shares a search: NQ >= THREADS splits the queries among the threads, fewer queries
// split the codes; each thread walks its codes in 16 KiB pieces (L1-resident) and runs its
// queries over each piece. Threads are started once and spin between rounds, so a round costs
// no thread start. Prints one JSON object per ISA: the median and best round in seconds and the
// number of (query, code) pairs within the threshold (equal for every ISA: a check of the loops).
// --ceiling prints, per ISA, the loop's arithmetic ceiling on one core (bound.hpp) instead.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bound.hpp"

namespace {

std::vector<std::uint8_t> read_file(const char* path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "count_bound: cannot read %s\n", path);
    std::exit(2);
  }
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Runs body(t) on threads 0..T-1 (thread 0 is the caller) each time run() is called.
class SpinTeam {
 public:
  explicit SpinTeam(int threads) : threads_(threads) {
    for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { loop(t); });
  }
  ~SpinTeam() {
    stop_.store(true);
    generation_.fetch_add(1);
    for (auto& w : workers_) w.join();
  }
  void run(const std::function<void(int)>& body) {
    body_ = &body;
    done_.store(0);
    generation_.fetch_add(1, std::memory_order_release);
    body(0);
    while (done_.load(std::memory_order_acquire) != threads_ - 1) {
    }
  }

 private:
  void loop(int t) {
    unsigned long seen = 0;
    for (;;) {
      unsigned long g;
      while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      }
      seen = g;
      if (stop_.load()) return;
      (*body_)(t);
      done_.fetch_add(1, std::memory_order_release);
    }
  }
  int threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* body_ = nullptr;
  std::atomic<unsigned long> generation_{0};
  std::atomic<int> done_{0}, stop_flag_{0};
  std::atomic<bool> stop_{false};
};

bool supported(const std::string& isa) {
  if (isa == "scalar") return __builtin_cpu_supports("popcnt");
  if (isa == "avx2" || isa == "avx2-rows") return __builtin_cpu_supports("avx2");
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vpopcntdq");
  return false;
}

}  // namespace

int ceilings() {
  for (const char* isa : {"scalar", "avx512"}) {
    if (!supported(isa)) {
      std::printf("{\"isa\": \"%s\", \"supported\": false}\n", isa);
      continue;
    }
    const bool wide = std::string(isa) == "avx512";
    double best = 0.0;  // best of three, so a moment of the host's noise does not lower it
    for (int r = 0; r < 3; ++r)
      best = std::max(best, wide ? bound::ceiling_avx512_steps_per_s(0.3) : bound::ceiling_scalar_steps_per_s(0.3));
    const int codes_per_step = wide ? 16 : 1, word_bytes = wide ? 4 : 8;
    std::printf("{\"isa\": \"%s\", \"supported\": true, \"steps_per_s\": %.6e, \"codes_per_step\": %d, "
                "\"word_bytes\": %d}\n", isa, best, codes_per_step, word_bytes);
    std::fflush(stdout);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--ceiling") return ceilings();
  if (argc < 7) {
    std::fprintf(stderr, "usage: count_bound CODES QUERIES CODE_SIZE NQ THREADS ROUNDS [ISA...] | --ceiling\n");
    return 2;
  }
  const std::vector<std::uint8_t> codes = read_file(argv[1]), queries = read_file(argv[2]);
  const std::size_t cs = std::strtoul(argv[3], nullptr, 10), nq = std::strtoul(argv[4], nullptr, 10);
  const int threads = std::atoi(argv[5]), rounds = std::atoi(argv[6]);
  const std::size_t n = codes.size() / cs;
  if (cs == 0 || cs > 128 || nq == 0 || nq * cs > queries.size() || threads < 1 || rounds < 1) {
    std::fprintf(stderr, "count_bound: bad arguments\n");
    return 2;
  }
  std::vector<std::string> isas;
  for (int i = 7; i < argc; ++i) isas.emplace_back(argv[i]);
  if (isas.empty()) isas = {"scalar", "avx2-rows", "avx2", "avx512"};
  const int threshold = static_cast<int>(2 * cs);  // nbits / 4
  SpinTeam team(threads);

  for (const std::string& isa : isas) {
    if (!supported(isa)) {
      std::printf("{\"isa\": \"%s\", \"supported\": false}\n", isa.c_str());
      continue;
    }
    bound::Layout layout;
    bound::CountFn count;
    if (isa == "avx512") {
      layout = bound::interleaved_words(codes.data(), n, cs);
      count = &bound::count_avx512;
    } else if (isa == "avx2-rows") {
      layout = bound::padded_rows(codes.data(), n, cs, cs <= 8 ? 8 : cs <= 16 ? 16 : (cs + 31) / 32 * 32);
      count = &bound::count_avx2_rows;
    } else if (isa == "avx2") {
      layout = bound::nibble_split_rows(codes.data(), n, cs);
      count = &bound::count_avx2;
    } else {
      layout = bound::padded_rows(codes.data(), n, cs, (cs + 7) / 8 * 8);
      count = &bound::count_scalar;
    }
    std::vector<std::uint8_t> qrows(nq * layout.row, 0);
    for (std::size_t q = 0; q < nq; ++q) std::memcpy(qrows.data() + q * layout.row, queries.data() + q * cs, cs);
    const std::size_t piece = std::max<std::size_t>(16, (16u << 10) / layout.row / 16 * 16);
    std::vector<std::uint64_t> hits(static_cast<std::size_t>(threads));
    const std::function<void(int)> body = [&](int t) {
      const std::size_t T = static_cast<std::size_t>(threads), ti = static_cast<std::size_t>(t);
      std::size_t q0 = 0, q1 = nq, c0 = 0, c1 = n;
      if (nq >= T) {
        q0 = nq * ti / T, q1 = nq * (ti + 1) / T;
      } else {  // slices on 16-code boundaries (the interleaved groups)
        c0 = std::min(n, (n * ti / T) / 16 * 16), c1 = t + 1 == threads ? n : std::min(n, (n * (ti + 1) / T) / 16 * 16);
      }
      std::uint64_t h = 0;
      for (std::size_t p0 = c0; p0 < c1; p0 += piece)
        for (std::size_t q = q0; q < q1; ++q) h += count(qrows.data() + q * layout.row, layout, p0, std::min(c1, p0 + piece), threshold);
      hits[ti] = h;
    };
    std::vector<double> times;
    std::uint64_t total = 0;
    for (int r = 0; r <= rounds; ++r) {  // round 0 warms up
      const auto t0 = std::chrono::steady_clock::now();
      team.run(body);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      total = 0;
      for (std::uint64_t h : hits) total += h;
      if (r > 0) times.push_back(s);
    }
    std::sort(times.begin(), times.end());
    std::printf("{\"isa\": \"%s\", \"supported\": true, \"median_s\": %.9f, \"best_s\": %.9f, \"within\": %llu}\n",
                isa.c_str(), times[times.size() / 2], times[0], static_cast<unsigned long long>(total));
    std::fflush(stdout);
  }
  return 0;
}
