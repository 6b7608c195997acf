// The thread pool: set_num_threads(n) bounds how many threads run a parallel_for, whatever chunk
// count the caller asks for, and every chunk runs exactly once.
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "deephash/common.hpp"
#include "deephash/threads.hpp"
#include "harness.hpp"

using namespace deephash;

// Runs a parallel_for of `chunks` chunks whose bodies overlap in time (each waits a little) and
// returns the distinct threads that ran them.
static std::set<std::thread::id> threads_used(std::size_t chunks, std::vector<int>& hits, bool awake_only = false,
                                              int wait_ms = 2) {
  std::mutex mu;
  std::set<std::thread::id> used;
  hits.assign(chunks * 10, 0);
  parallel_for(chunks * 10, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) ++hits[i];
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    std::lock_guard<std::mutex> lock(mu);
    used.insert(std::this_thread::get_id());
  }, chunks, awake_only);
  return used;
}

TEST(one_thread_means_the_caller_alone) {
  const int before = get_num_threads();
  set_num_threads(4);  // creates workers
  set_num_threads(1);
  std::vector<int> hits;
  const auto used = threads_used(16, hits);
  CHECK_EQ(used.size(), std::size_t{1});
  CHECK(used.count(std::this_thread::get_id()) == 1);
  for (int h : hits) CHECK_EQ(h, 1);
  set_num_threads(before);
}

TEST(never_more_threads_than_asked) {
  const int before = get_num_threads();
  for (int n : {2, 3}) {
    set_num_threads(4);
    set_num_threads(n);
    std::vector<int> hits;
    const auto used = threads_used(32, hits);
    CHECK(used.size() <= static_cast<std::size_t>(n));
    for (int h : hits) CHECK_EQ(h, 1);
  }
  set_num_threads(before);
}

TEST(thread_spin_is_bounded_and_every_spin_runs_every_chunk) {
  const long long before = get_thread_spin();
  CHECK_EQ(before, 200LL);
  for (long long us : {0LL, 3000LL, 100000LL}) {
    set_thread_spin(us);
    CHECK_EQ(get_thread_spin(), us);
    for (int round = 0; round < 2; ++round) {  // the second after the workers slept (spin 0) or polled
      std::vector<int> hits;
      threads_used(8, hits);
      for (int h : hits) CHECK_EQ(h, 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  CHECK_THROWS(set_thread_spin(-1), InvalidArgument);
  CHECK_THROWS(set_thread_spin(100001), InvalidArgument);
  CHECK_EQ(get_thread_spin(), 100000LL);
  set_thread_spin(before);
}

// awake_only: with every worker asleep the caller runs every chunk itself; with workers polling
// (just back from a call, under a long spin) they share the chunks as usual. polling_threads()
// counts the polling ones, and wakes sleeping ones only when it is called often.
TEST(awake_only_wakes_no_sleeping_thread) {
  const int before = get_num_threads();
  const long long spin = get_thread_spin();
  set_num_threads(4);
  set_thread_spin(0);
  std::vector<int> hits;
  threads_used(8, hits);  // the workers ran, then sleep at once (no polling)
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_EQ(polling_threads(), 0);
  CHECK_EQ(polling_threads(), 0);  // called again at once, but with no polling time: none woken
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_EQ(polling_threads(), 0);
  auto used = threads_used(8, hits, /*awake_only=*/true);
  CHECK_EQ(used.size(), std::size_t{1});
  CHECK(used.count(std::this_thread::get_id()) == 1);
  for (int h : hits) CHECK_EQ(h, 1);

  set_thread_spin(100000);
  threads_used(8, hits);  // wakes them; afterwards they poll for up to 100 ms
  CHECK(polling_threads() >= 1);
  CHECK(polling_threads() <= 3);
  used = threads_used(8, hits, /*awake_only=*/true, /*wait_ms=*/5);
  CHECK(used.size() > 1);
  for (int h : hits) CHECK_EQ(h, 1);

  // Asleep again; calls close together (within the 100 ms of polling) wake them.
  set_thread_spin(0);
  threads_used(8, hits);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  set_thread_spin(100000);
  int polling = 0;
  for (int i = 0; i < 2000 && polling == 0; ++i) {
    polling = polling_threads();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(polling >= 1);
  set_thread_spin(spin);
  set_num_threads(before);
}

HARNESS_MAIN()
