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
static std::set<std::thread::id> threads_used(std::size_t chunks, std::vector<int>& hits) {
  std::mutex mu;
  std::set<std::thread::id> used;
  hits.assign(chunks * 10, 0);
  parallel_for(chunks * 10, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) ++hits[i];
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard<std::mutex> lock(mu);
    used.insert(std::this_thread::get_id());
  }, chunks);
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

HARNESS_MAIN()
