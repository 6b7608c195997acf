// The core's own parallelism: a small persistent thread pool shared by every index.
//
// parallel_for splits [0, n) into chunks run by the pool's workers and the calling thread.
// Many callers may run parallel_for at once (searches from several Python threads); each call
// waits only for its own chunks. The first exception thrown by a chunk is rethrown in the caller
// after every chunk of that call has finished.
#pragma once

#include <cstddef>
#include <functional>

namespace deephash {

// Bound the number of threads the core uses (>= 1). The default is the number of cores.
// Throws InvalidArgument for n < 1.
void set_num_threads(int n);
int get_num_threads() noexcept;

// How long (microseconds, default 200) the core's idle threads poll for the next parallel call
// before they sleep, and a caller polls for its helpers before it sleeps. A thread woken from
// sleep joins a call late (up to a millisecond on a virtual machine); a process whose calls come
// less than this apart (a search service) keeps its threads ready by raising it, at the price of
// an idle core polling that long after each call. Throws InvalidArgument outside [0, 100000].
void set_thread_spin(long long microseconds);
long long get_thread_spin() noexcept;

// Calls body(begin, end) on disjoint chunks covering [0, n), at most `max_chunks` of them
// (0 = get_num_threads()). With one chunk, body runs in the calling thread.
void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& body,
                  std::size_t max_chunks = 0);

}  // namespace deephash
