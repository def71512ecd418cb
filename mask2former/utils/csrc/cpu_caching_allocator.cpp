// A caching allocator for CPU tensors: large freed blocks are kept and handed out again.
//
// Why: inference on CPU makes several 100+ MB temporaries per image (100 mask logits upsampled
// to 512x512 are 105 MB). The C library serves such blocks with fresh mmap calls and unmaps
// them on free, so each one is page-faulted in again (zero-filled) for every image; at 512x512
// on 2 cores that was most of the post-processing time. Keeping the blocks makes a repeated
// pipeline reuse the same, already-mapped memory. The idea is the one of PyTorch's CUDA
// caching allocator; this one is deliberately small:
//   * requests below `min_block_bytes` go to the allocator that was installed before (torch's
//     default), as do all requests while caching is disabled;
//   * larger requests are rounded up to 256 KiB and served best-fit from the cache when a cached
//     block is at most 1/8 larger, otherwise from posix_memalign (64-byte aligned, as torch's);
//   * a freed block is cached while the cache holds at most `max_cached_bytes`, else freed;
//   * allocations and frees are reported to torch's profiler like the default allocator's;
//   * raw allocation (oneDNN's scratch memory goes through it) is supported: the context of
//     every DataPtr is its data pointer, and the raw deleter finds the block by address.
// It is process-wide (c10::SetCPUAllocator): enabled explicitly, never on import.

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <Python.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace mask2former {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kRounding = 256 * 1024;

class CachingCPUAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    c10::Allocator* fallback;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fallback = previous_;
      if (enabled_ && n >= min_block_) {
        const size_t size = round_up(n);
        void* ptr = nullptr;
        auto it = free_.lower_bound(size);
        if (it != free_.end() && it->first <= size + size / 8) {
          ptr = it->second;
          live_[ptr] = it->first;
          cached_ -= it->first;
          in_use_ += it->first;
          free_.erase(it);
          ++hits_;
        } else {
          ptr = new_memory(size);
          live_[ptr] = size;
          in_use_ += size;
          ++misses_;
        }
        report(ptr, static_cast<int64_t>(live_[ptr]));
        return {ptr, ptr, &CachingCPUAllocator::raw_delete, c10::Device(c10::kCPU)};
      }
    }
    return fallback->allocate(n);
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCPUAllocator::raw_delete; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    if (count > 0) std::memcpy(dest, src, count);
  }

  static CachingCPUAllocator& instance() {
    static CachingCPUAllocator* allocator = new CachingCPUAllocator();  // never destroyed:
    return *allocator;  // blocks may be released during interpreter shutdown
  }

  bool set_enabled(bool enabled, int64_t max_cached_bytes, int64_t min_block_bytes) {
    TORCH_CHECK(max_cached_bytes >= 0, "max_cached_bytes must be >= 0, got ", max_cached_bytes);
    TORCH_CHECK(min_block_bytes >= 1, "min_block_bytes must be >= 1, got ", min_block_bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    max_cached_ = static_cast<size_t>(max_cached_bytes);
    min_block_ = static_cast<size_t>(min_block_bytes);
    constexpr uint8_t kPriority = std::numeric_limits<uint8_t>::max();
    if (enabled && !enabled_) {
      c10::Allocator* current = c10::GetCPUAllocator();
      if (current != this) previous_ = current;
      c10::SetCPUAllocator(this, kPriority);
      enabled_ = c10::GetCPUAllocator() == this;
    } else if (!enabled && enabled_) {
      c10::SetCPUAllocator(previous_, kPriority);
      enabled_ = false;
    }
    if (!enabled_) release_cached_locked();
    else trim_locked();
    return enabled_;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }

  std::vector<int64_t> stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {enabled_ ? 1 : 0, static_cast<int64_t>(cached_), static_cast<int64_t>(in_use_),
            static_cast<int64_t>(hits_), static_cast<int64_t>(misses_),
            static_cast<int64_t>(free_.size())};
  }

 private:
  CachingCPUAllocator() : previous_(c10::GetCPUAllocator()) {}

  static size_t round_up(size_t n) { return (n + kRounding - 1) / kRounding * kRounding; }

  static void raw_delete(void* ptr) { instance().release(ptr); }

  void release(void* ptr) {
    c10::DeleterFnPtr fallback_delete = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(ptr);
      if (it != live_.end()) {
        const size_t size = it->second;
        live_.erase(it);
        in_use_ -= size;
        report(ptr, -static_cast<int64_t>(size));
        if (enabled_ && cached_ + size <= max_cached_) {
          free_.emplace(size, ptr);
          cached_ += size;
        } else {
          std::free(ptr);
        }
        return;
      }
      fallback_delete = previous_->raw_deleter();  // a small block raw-allocated through us
    }
    TORCH_CHECK(fallback_delete != nullptr,
                "CPU caching allocator: cannot free a block it did not allocate");
    fallback_delete(ptr);
  }

  void* new_memory(size_t size) {
    void* ptr = nullptr;
    if (posix_memalign(&ptr, kAlignment, size) != 0) {
      release_cached_locked();  // give the cache back and try once more
      ptr = nullptr;
      if (posix_memalign(&ptr, kAlignment, size) != 0) ptr = nullptr;
    }
    TORCH_CHECK(ptr != nullptr, "CPU caching allocator: out of memory allocating ", size,
                " bytes (", in_use_, " bytes in use)");
    return ptr;
  }

  // Keeps at most max_cached_ bytes, freeing the largest blocks first.
  void trim_locked() {
    while (cached_ > max_cached_ && !free_.empty()) {
      auto it = std::prev(free_.end());
      cached_ -= it->first;
      std::free(it->second);
      free_.erase(it);
    }
  }

  void release_cached_locked() {
    for (auto& entry : free_) std::free(entry.second);
    free_.clear();
    cached_ = 0;
  }

  void report(void* ptr, int64_t delta) {
    c10::reportMemoryUsageToProfiler(ptr, delta, in_use_, in_use_ + cached_,
                                     c10::Device(c10::kCPU));
  }

  std::mutex mutex_;
  c10::Allocator* previous_;
  std::multimap<size_t, void*> free_;       // cached blocks by size
  std::unordered_map<void*, size_t> live_;  // blocks handed out, by address
  bool enabled_ = false;
  size_t max_cached_ = 0, min_block_ = 1 << 20;
  size_t cached_ = 0, in_use_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

bool set_cpu_caching_allocator(bool enabled, int64_t max_cached_bytes, int64_t min_block_bytes) {
  return CachingCPUAllocator::instance().set_enabled(enabled, max_cached_bytes, min_block_bytes);
}

std::vector<int64_t> cpu_caching_allocator_stats() {
  return CachingCPUAllocator::instance().stats();
}

void cpu_caching_allocator_empty_cache() { CachingCPUAllocator::instance().empty_cache(); }

}  // namespace
}  // namespace mask2former

TORCH_LIBRARY(mask2former_allocator, m) {
  m.def("set_cpu_caching_allocator(bool enabled, int max_cached_bytes, int min_block_bytes) -> bool",
        &mask2former::set_cpu_caching_allocator);
  // [enabled, cached bytes, bytes in use, hits, misses, cached blocks]
  m.def("cpu_caching_allocator_stats() -> int[]", &mask2former::cpu_caching_allocator_stats);
  m.def("cpu_caching_allocator_empty_cache() -> ()",
        &mask2former::cpu_caching_allocator_empty_cache);
}

// `from mask2former import _allocator` loads this library (its own extension, separate from the
// deformable-attention op's mask2former._C), which registers the operators above with the
// dispatcher (torch.ops.mask2former_allocator.*). The Python module itself is empty.
PyMODINIT_FUNC PyInit__allocator(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_allocator",
      "CPU caching allocator of mask2former; its operators live in "
      "torch.ops.mask2former_allocator",
      -1, nullptr};
  return PyModule_Create(&module_def);
}
