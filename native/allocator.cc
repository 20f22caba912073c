// libtorch's CPU allocator for large tensors: mappings of our own and a bounded cache of freed blocks.
//
// glibc serves every block above 32 MB with a fresh mmap and returns it on free, so each large
// temporary (a slab activation of 84 MB, say) costs ~20 000 page faults and the kernel zeroing its pages:
// measured here, a 21 M-element elementwise op took 25 ms with a new output and 3 ms in place. On these
// VMs a fresh page is dearer still, since freed guest memory is handed back to the host (free page
// reporting) and faulted in again from there: 0.4 s per GiB as 4 kB pages, 2.4 s per GiB as transparent
// huge pages, 0.24 s per GiB populated by mmap at once.
// Blocks of at least LARGE bytes therefore come from 2 MB-aligned mappings, and freed ones wait in a
// cache (at most CACHE_LIMIT bytes, exact sizes, least recently freed evicted first) for the next
// request of the same size, as the loops of the streaming encoder, of the U-Net and of matching make
// them. A new mapping counts against the limit too, so a large one empties the cache first (the blocks
// of an earlier pattern would only add to the peak). Blocks from HUGE up to STORED — the slab
// temporaries of the streaming encoder, reused slab after slab — are advised as huge pages (the
// convolutions reading them ran ~10 % faster); smaller ones (the U-Net's activations, used a few times
// per pass: its first pass on fresh memory took 3.1–3.6 s with huge pages, 2.4–2.7 s without) and whole stored
// activations (≥ STORED, populated at once) are not. Blocks under LARGE go to libtorch's allocator.
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>

#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>

#include "common.h"

namespace dt {
namespace {

constexpr size_t LARGE = size_t(4) << 20;
constexpr size_t HUGE_PAGE = size_t(2) << 20;
constexpr size_t HUGE = size_t(64) << 20;
constexpr size_t STORED = size_t(256) << 20;
constexpr size_t CACHE_LIMIT = size_t(1) << 30;

struct Block {
  void* mapping;   // what mmap returned
  size_t mapped;   // its length
  size_t size;     // the size class (a multiple of HUGE_PAGE)
  void* data;      // 2 MB-aligned start handed to libtorch
};

std::mutex mutex;
std::list<Block*> cache;                    // free blocks, most recently freed first
std::unordered_map<void*, Block*> in_use;   // data pointer → block (oneDNN frees by raw pointer)
size_t cached_bytes = 0;
c10::DeleterFnPtr small_deleter = nullptr;

void unmap(Block* b) {
  munmap(b->mapping, b->mapped);
  delete b;
}

// Unmaps the least recently freed blocks until at most `keep` bytes stay cached (the mutex held).
void evict_locked(size_t keep) {
  while (cached_bytes > keep) {
    Block* b = cache.back();
    cache.pop_back();
    cached_bytes -= b->size;
    unmap(b);
  }
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
  if (b->size > CACHE_LIMIT) return unmap(b);
  evict_locked(CACHE_LIMIT - b->size);
  cache.push_front(b);
  cached_bytes += b->size;
}

struct LargeBlockAllocator final : at::Allocator {
  at::Allocator* small;
  explicit LargeBlockAllocator(at::Allocator* fallback) : small(fallback) {}

  at::DataPtr allocate(size_t n) const override {
    if (n < LARGE) {
      at::DataPtr p = small->allocate(n);
      void* data = p.release_context();
      return {data, data, &release_block, at::Device(at::DeviceType::CPU)};
    }
    const size_t size = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (auto it = cache.begin(); it != cache.end(); ++it) {
        Block* b = *it;
        if (b->size != size) continue;
        cache.erase(it);
        cached_bytes -= size;
        in_use.emplace(b->data, b);
        return {b->data, b->data, &release_block, at::Device(at::DeviceType::CPU)};
      }
      evict_locked(size < CACHE_LIMIT ? CACHE_LIMIT - size : 0);
    }
    const size_t mapped = size + HUGE_PAGE;
    const bool stored = size >= STORED;
    void* mapping = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (stored ? MAP_POPULATE : 0), -1, 0);
    if (mapping == MAP_FAILED) throw std::runtime_error("out of memory: could not map " + std::to_string(n) + " bytes");
    const uintptr_t start = (reinterpret_cast<uintptr_t>(mapping) + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void* data = reinterpret_cast<void*>(start);
    if (size >= HUGE && !stored) madvise(data, size, MADV_HUGEPAGE);
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
  static LargeBlockAllocator allocator(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&allocator, /*priority=*/1);
}

size_t release_cached_blocks() {
  std::lock_guard<std::mutex> lock(mutex);
  const size_t freed = cached_bytes;
  evict_locked(0);
  return freed;
}

size_t cached_block_bytes() {
  std::lock_guard<std::mutex> lock(mutex);
  return cached_bytes;
}

}  // namespace dt
