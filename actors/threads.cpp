#include "actors/threads.hpp"

#include <ATen/Parallel.h>
#include <caf/thread_hook.hpp>
#include <omp.h>

namespace floe::actors {
namespace {

struct SerialThreads : caf::thread_hook {
  void init(caf::actor_system&) override {}
  void thread_started() override { keep_thread_serial(); }
  void thread_terminates() override {}
};

}  // namespace

void share_cores_with_compute(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.add_thread_hook<SerialThreads>();
}

void use_intra_op_threads(int threads) {
  // LibTorch gives each thread, at its first parallel operation, the count last passed to
  // at::set_num_threads (process-wide), overriding what the thread had set. Asking for the count
  // does that first use here; after it the thread's own setting holds. at::set_num_threads itself
  // is never called: it would change every later thread's start and rebuild LibTorch's
  // pthreadpool (new threads) each time.
  at::get_num_threads();
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

void keep_thread_serial() { use_intra_op_threads(1); }

}  // namespace floe::actors
