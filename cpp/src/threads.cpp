#include "deephash/threads.hpp"

#include <algorithm>
#include <atomic>
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

// One parallel_for call: chunks are claimed with an atomic counter by whoever is free.
struct Job {
  const std::function<void(std::size_t, std::size_t)>* body;
  std::size_t n, nchunks;
  std::atomic<std::size_t> next{0};
  std::size_t done = 0;  // guarded by mu
  std::mutex mu;
  std::condition_variable finished;
  std::exception_ptr error;  // first error, guarded by mu

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
      std::lock_guard<std::mutex> lock(mu);
      if (err && !error) error = err;
      if (++done == nchunks) finished.notify_all();
    }
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
    {
      std::lock_guard<std::mutex> lock(mu_);
      // At most size() threads in all, the caller included, however many chunks the job has.
      const std::size_t allowed = static_cast<std::size_t>(std::max(1, size())) - 1;
      const std::size_t helpers = std::min({job->nchunks - 1, workers_.size(), allowed});
      for (std::size_t i = 0; i < helpers; ++i) queue_.push_back(job);
    }
    cv_.notify_all();
    job->work();
    std::unique_lock<std::mutex> lock(job->mu);
    job->finished.wait(lock, [&] { return job->done == job->nchunks; });
  }

 private:
  Pool() {
    unsigned hc = std::thread::hardware_concurrency();
    resize(hc ? static_cast<int>(hc) : 1);
  }

  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job->work();
    }
  }

  std::atomic<int> target_{1};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> workers_;
};

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw InvalidArgument("num_threads must be >= 1, got " + std::to_string(n));
  Pool::instance().resize(n);
}

int num_threads() noexcept { return Pool::instance().size(); }

void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& body,
                  std::size_t max_chunks) {
  if (n == 0) return;
  std::size_t chunks = max_chunks ? max_chunks : static_cast<std::size_t>(num_threads());
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
