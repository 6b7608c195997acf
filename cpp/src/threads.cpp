#include "deephash/threads.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "deephash/common.hpp"

namespace deephash {
namespace {

// How long an idle thread keeps polling for work before it sleeps, and how long a caller polls for
// its helpers to finish before it sleeps (set_thread_spin). Waking a sleeping thread costs tens to
// hundreds of microseconds on a virtual machine, more than a whole search of a small database;
// polling this long costs an idle core at most this much time after each call.
constexpr long long kDefaultSpinUs = 200;
constexpr long long kMaxSpinUs = 100000;
std::atomic<long long> g_spin_us{kDefaultSpinUs};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// Polls pred() for up to the spin time; returns whether it became true.
template <class Pred>
bool spin_until(Pred pred) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::microseconds(g_spin_us.load(std::memory_order_relaxed));
  for (unsigned i = 0;; ++i) {
    if (pred()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return pred();
  }
}

// One parallel_for call: chunks are claimed with an atomic counter by whoever is free.
struct Job {
  const std::function<void(std::size_t, std::size_t)>* body;
  std::size_t n, nchunks;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::mutex mu;
  std::condition_variable finished;
  bool caller_sleeping = false;  // guarded by mu
  std::exception_ptr error;      // first error, guarded by mu

  // Runs chunks until none is left; returns after this thread can claim no more.
  void work() {
    for (;;) {
      const std::size_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) return;
      const std::size_t begin = n * c / nchunks, end = n * (c + 1) / nchunks;
      std::exception_ptr err;
      try {
        (*body)(begin, end);
      } catch (...) {
        err = std::current_exception();
      }
      if (err) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = err;
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == nchunks) {
        std::lock_guard<std::mutex> lock(mu);
        if (caller_sleeping) finished.notify_all();
      }
    }
  }

  // The caller's wait: poll, then sleep until the last chunk is done.
  void wait() {
    if (spin_until([&] { return done.load(std::memory_order_acquire) == nchunks; })) return;
    std::unique_lock<std::mutex> lock(mu);
    caller_sleeping = true;
    finished.wait(lock, [&] { return done.load(std::memory_order_acquire) == nchunks; });
  }
};

class Pool {
 public:
  static Pool& instance() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static destructors
    return *pool;
  }

  int size() const noexcept { return target_.load(std::memory_order_relaxed); }

  void resize(int n) {
    target_.store(n, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    // Workers are only ever added; a smaller target just limits how many chunks a job gets.
    while (static_cast<int>(workers_.size()) < n - 1) workers_.emplace_back([this] { loop(); });
  }

  void run(const std::shared_ptr<Job>& job) {
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // At most size() threads in all, the caller included, however many chunks the job has.
      const std::size_t allowed = static_cast<std::size_t>(std::max(1, size())) - 1;
      const std::size_t helpers = std::min({job->nchunks - 1, workers_.size(), allowed});
      for (std::size_t i = 0; i < helpers; ++i) queue_.push_back(job);
      pending_.fetch_add(helpers, std::memory_order_release);
      wake = helpers > 0 && sleeping_ > 0;
    }
    if (wake) cv_.notify_all();
    job->work();
    job->wait();
  }

 private:
  Pool() {
    unsigned hc = std::thread::hardware_concurrency();
    resize(hc ? static_cast<int>(hc) : 1);
  }

  void loop() {
    for (;;) {
      spin_until([&] { return pending_.load(std::memory_order_acquire) > 0; });
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (queue_.empty()) {
          ++sleeping_;
          cv_.wait(lock, [&] { return !queue_.empty(); });
          --sleeping_;
        }
        job = std::move(queue_.front());
        queue_.pop_front();
        pending_.fetch_sub(1, std::memory_order_relaxed);
      }
      job->work();
    }
  }

  std::atomic<int> target_{1};
  std::atomic<std::size_t> pending_{0};  // jobs in queue_, readable without the lock
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  int sleeping_ = 0;  // workers blocked on cv_, guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw InvalidArgument("num_threads must be >= 1, got " + std::to_string(n));
  Pool::instance().resize(n);
}

int get_num_threads() noexcept { return Pool::instance().size(); }

void set_thread_spin(long long microseconds) {
  if (microseconds < 0 || microseconds > kMaxSpinUs)
    throw InvalidArgument("set_thread_spin: microseconds must be in [0, " + std::to_string(kMaxSpinUs) + "], got " +
                          std::to_string(microseconds));
  g_spin_us.store(microseconds, std::memory_order_relaxed);
}

long long get_thread_spin() noexcept { return g_spin_us.load(std::memory_order_relaxed); }

void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& body,
                  std::size_t max_chunks) {
  if (n == 0) return;
  std::size_t chunks = max_chunks ? max_chunks : static_cast<std::size_t>(get_num_threads());
  chunks = std::max<std::size_t>(1, std::min(chunks, n));
  if (chunks == 1) {
    body(0, n);
    return;
  }
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->n = n;
  job->nchunks = chunks;
  Pool::instance().run(job);
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace deephash
