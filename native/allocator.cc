// libtorch's CPU allocator for large tensors: huge-page mappings and a bounded cache of freed blocks.
//
// glibc serves every block above 32 MB with a fresh mmap and returns it on free, so each large
// temporary (a slab activation of 84 MB, say) costs ~20 000 page faults and the kernel zeroing its pages:
// measured here, a 21 M-element elementwise op took 25 ms with a new output and 3 ms in place. Blocks of
// at least LARGE bytes therefore come from 2 MB-aligned mappings advised as transparent huge pages, and
// freed ones wait in a cache (at most CACHE_LIMIT bytes, exact size classes) for the next request of the
// same size, as the loops of the streaming encoder and of matching make them; a request the cache
// cannot serve empties it (the blocks of an earlier pattern would only add to the peak). Smaller blocks
// go to libtorch's own allocator.
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "common.h"

namespace dt {
namespace {

constexpr size_t LARGE = size_t(4) << 20;
constexpr size_t HUGE_PAGE = size_t(2) << 20;
constexpr size_t CACHE_LIMIT = size_t(1) << 30;

struct Block {
  void* mapping;   // what mmap returned
  size_t mapped;   // its length
  size_t size;     // the size class (a multiple of HUGE_PAGE)
  void* data;      // 2 MB-aligned start handed to libtorch
};

std::mutex mutex;
std::multimap<size_t, Block*> cache;        // size class → free blocks
std::unordered_map<void*, Block*> in_use;   // data pointer → block (oneDNN frees by raw pointer)
size_t cached_bytes = 0;
c10::DeleterFnPtr small_deleter = nullptr;

void unmap(Block* b) {
  munmap(b->mapping, b->mapped);
  delete b;
}

// Unmaps every cached block (the mutex held); returns the bytes released.
size_t flush_locked() {
  const size_t freed = cached_bytes;
  for (auto& entry : cache) unmap(entry.second);
  cache.clear();
  cached_bytes = 0;
  return freed;
}

// The deleter of every block, large or small: the context is the data pointer itself, as libtorch's
// raw_allocate / raw_deallocate (used by oneDNN) require.
void release_block(void* data) {
  // Large blocks start on a 2 MB boundary; anything else is libtorch's own (no lock needed).
  if (reinterpret_cast<uintptr_t>(data) % HUGE_PAGE != 0) return small_deleter(data);
  std::lock_guard<std::mutex> lock(mutex);
  auto found = in_use.find(data);
  if (found == in_use.end()) return small_deleter(data);
  Block* b = found->second;
  in_use.erase(found);
  // Keep the block for reuse unless that would exceed the limit; then give back the oldest sizes first.
  if (b->size > CACHE_LIMIT) return unmap(b);
  while (cached_bytes + b->size > CACHE_LIMIT && !cache.empty()) {
    auto it = cache.begin();
    cached_bytes -= it->second->size;
    unmap(it->second);
    cache.erase(it);
  }
  cache.emplace(b->size, b);
  cached_bytes += b->size;
}

struct HugePageAllocator final : at::Allocator {
  at::Allocator* small;
  explicit HugePageAllocator(at::Allocator* fallback) : small(fallback) {}

  at::DataPtr allocate(size_t n) const override {
    if (n < LARGE) {
      at::DataPtr p = small->allocate(n);
      void* data = p.release_context();
      return {data, data, &release_block, at::Device(at::DeviceType::CPU)};
    }
    const size_t size = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = cache.find(size);
      if (it != cache.end()) {
        Block* b = it->second;
        cache.erase(it);
        cached_bytes -= size;
        in_use.emplace(b->data, b);
        return {b->data, b->data, &release_block, at::Device(at::DeviceType::CPU)};
      }
      // A miss means the pattern of sizes changed (another layer, a border slab): the blocks cached so
      // far are stale, and returning them first keeps them from adding to the peak resident memory.
      flush_locked();
    }
    const size_t mapped = size + HUGE_PAGE;
    void* mapping = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping == MAP_FAILED) throw std::runtime_error("out of memory: could not map " + std::to_string(n) + " bytes");
    const uintptr_t start = (reinterpret_cast<uintptr_t>(mapping) + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void* data = reinterpret_cast<void*>(start);
    madvise(data, size, MADV_HUGEPAGE);
    std::lock_guard<std::mutex> lock(mutex);
    in_use.emplace(data, new Block{mapping, mapped, size, data});
    return {data, data, &release_block, at::Device(at::DeviceType::CPU)};
  }

  at::DeleterFnPtr raw_deleter() const override { return &release_block; }
};

}  // namespace

void install_allocator() {
  // libtorch's default CPU allocator hands out data == context with a plain deleter (c10::free_cpu).
  small_deleter = c10::GetCPUAllocator()->raw_deleter();
  static HugePageAllocator allocator(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&allocator, /*priority=*/1);
}

size_t release_cached_blocks() {
  std::lock_guard<std::mutex> lock(mutex);
  return flush_locked();
}

size_t cached_block_bytes() {
  std::lock_guard<std::mutex> lock(mutex);
  return cached_bytes;
}

}  // namespace dt
