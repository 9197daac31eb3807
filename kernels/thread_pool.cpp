// thread_pool: fixed worker threads that pick up parallel_for jobs. A job is published by bumping
// a generation counter; idle workers spin on it for a short while (a forward pass issues many
// small jobs back to back) and then sleep on it with a futex, so waking costs a system call only
// when a worker really went to sleep. Chunks are claimed from an atomic counter and the caller
// waits only for chunks, never for workers: a worker that is asleep or lost its core (shared
// machines) simply takes no part in the job.
//
// Reuse of the job fields is guarded by `active` (workers between noticing a job and leaving it)
// and `closed` (the job's chunks are all done): the caller closes a job, waits for active == 0,
// and only then writes the next job. A worker registers as active before it checks `closed`, so
// either the caller sees it and waits, or it sees the job closed and backs off (all seq_cst).
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/ops.h"

namespace gw::kernels {
namespace {

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins on `done` with pause, then yields the core (someone we wait for may need it).
template <class Done>
void spin_until(Done done) {
  for (int i = 0; !done(); ++i) {
    if (i < 2048) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

// How long an idle worker polls for the next job before it sleeps.
constexpr auto spin_before_sleep = std::chrono::microseconds(200);

}  // namespace

struct thread_pool::impl {
  std::vector<std::thread> workers;
  std::mutex call_mutex;  // one parallel_for at a time

  // The current job: written by the caller only while no worker is active.
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0;
  int64_t chunk = 1;
  int64_t n_chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> chunks_done{0};
  std::atomic<bool> closed{true};
  std::atomic<int> active{0};

  std::atomic<uint32_t> generation{0};  // futex word: bumped once per job (and on shutdown)
  std::atomic<int> sleepers{0};
  std::atomic<bool> stopping{false};

  void run_chunks() {
    for (;;) {
      const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= n) return;
      (*fn)(begin, std::min(n, begin + chunk));
      chunks_done.fetch_add(1, std::memory_order_release);
    }
  }

  // Waits (spin, then futex) until the generation differs from `seen`; returns the new one.
  uint32_t wait_for_job(uint32_t seen) {
    uint32_t now = generation.load(std::memory_order_acquire);
    const auto deadline = std::chrono::steady_clock::now() + spin_before_sleep;
    for (int i = 0; now == seen; ++i) {
      cpu_relax();
      now = generation.load(std::memory_order_acquire);
      if ((i & 63) == 63 && now == seen && std::chrono::steady_clock::now() > deadline) {
        sleepers.fetch_add(1);
        futex_wait(&generation, seen);  // returns at once if the generation moved on
        sleepers.fetch_sub(1);
        now = generation.load(std::memory_order_acquire);
      }
    }
    return now;
  }

  void worker_loop() {
    uint32_t seen = 0;
    for (;;) {
      seen = wait_for_job(seen);
      if (stopping.load(std::memory_order_acquire)) return;
      active.fetch_add(1);
      if (!closed.load()) run_chunks();
      active.fetch_sub(1);
    }
  }

  void publish() {
    generation.fetch_add(1);  // seq_cst: ordered before the sleepers check (pairs with the workers)
    if (sleepers.load() > 0) futex_wake_all(&generation);
  }
};

thread_pool::thread_pool(int n_threads) : impl_(std::make_unique<impl>()) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  impl_->workers.reserve(static_cast<size_t>(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) impl_->workers.emplace_back([p = impl_.get()] { p->worker_loop(); });
}

thread_pool::~thread_pool() {
  impl_->stopping.store(true, std::memory_order_release);
  impl_->publish();
  for (auto& t : impl_->workers) t.join();
}

int thread_pool::size() const { return static_cast<int>(impl_->workers.size()) + 1; }

void thread_pool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  impl& p = *impl_;
  if (p.workers.empty() || n == 1) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> lock(p.call_mutex);
  // Workers still leaving the previous job read its fields: let them go first.
  spin_until([&] { return p.active.load() == 0; });
  const int64_t threads = size();
  // About four chunks per thread: enough to even out uneven progress, few enough to stay cheap.
  p.fn = &fn;
  p.n = n;
  p.chunk = std::max<int64_t>(1, n / (threads * 4));
  p.n_chunks = (n + p.chunk - 1) / p.chunk;
  p.next.store(0, std::memory_order_relaxed);
  p.chunks_done.store(0, std::memory_order_relaxed);
  p.closed.store(false);
  p.publish();
  p.run_chunks();
  spin_until([&] { return p.chunks_done.load(std::memory_order_acquire) == p.n_chunks; });
  p.closed.store(true);
}

}  // namespace gw::kernels
