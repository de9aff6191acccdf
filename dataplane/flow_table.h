// The per-worker connection table of the load-balancer path (SPEC.md §4.2):
// a bounded set of flows, each pinned to the backend it was first given.
// Everything is allocated at construction: entries in one array, an LRU list
// and a free list threaded through them with Boost.Intrusive hooks, and an
// open-addressing index (linear probing, backward-shift deletion). The fast
// path never allocates, never frees and never locks: a table belongs to one
// worker.
//
// Laid out for a packet's few cache lines: an index slot holds the flow hash
// beside the entry number, so probes compare hashes without touching
// entries, and deletions shift slots without reading entries; an entry is
// one cache line (compact IPv4 key, ids, clock, timeout, hooks). A hit only
// marks its entry as referenced (in that same line): the LRU order is kept
// by "second chance", i.e. an entry that reaches the cold end while marked
// moves back to the head instead of being evicted, rather than moving every
// hit entry to the head (which touches two more random lines per packet).
//
// Keys are IPv4 (the fast path forwards IPv4 only): a stratus_flow_key with
// non-zero upper address words, or a VRF id of 2^24 or more, is never
// found and never inserted.
//
// Time is whatever monotonic tick the caller passes (TSC cycles in workers,
// a fake clock in tests); timeouts are in the same ticks.
#pragma once

#include <sys/mman.h>

#include <boost/intrusive/list.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <vector>

#include "lb/flow_hash.h"

namespace stratus::dpdk {

// A flow key packed in two words: (src, dst) and (vrf | proto << 24, sport,
// dport), all as in stratus_flow_key.
struct FlowKey4 {
  std::uint64_t addrs = 0;
  std::uint64_t rest = 0;
  bool operator==(const FlowKey4 &) const = default;
};

// Packs `k`; false when it does not fit (IPv6, huge VRF id, pad bytes).
inline bool pack_flow_key(const stratus_flow_key &k, FlowKey4 *out) {
  if ((k.src[1] | k.src[2] | k.src[3] | k.dst[1] | k.dst[2] | k.dst[3]) != 0 || k.vrf >= 1u << 24 ||
      (k.pad[0] | k.pad[1] | k.pad[2]) != 0) {
    return false;
  }
  out->addrs = std::uint64_t{k.src[0]} | std::uint64_t{k.dst[0]} << 32;
  out->rest = std::uint64_t{k.vrf | std::uint32_t{k.proto} << 24} | std::uint64_t{k.sport} << 32 |
              std::uint64_t{k.dport} << 48;
  return true;
}

inline stratus_flow_key unpack_flow_key(const FlowKey4 &p) {
  stratus_flow_key k{};
  k.src[0] = static_cast<std::uint32_t>(p.addrs);
  k.dst[0] = static_cast<std::uint32_t>(p.addrs >> 32);
  k.vrf = static_cast<std::uint32_t>(p.rest) & 0xffffff;
  k.proto = static_cast<std::uint8_t>(p.rest >> 24);
  k.sport = static_cast<std::uint16_t>(p.rest >> 32);
  k.dport = static_cast<std::uint16_t>(p.rest >> 48);
  return k;
}

// Memory for the table's arrays. A table of a million flows spans tens of
// MiB and each packet touches two random lines of it; with 4 KiB pages
// nearly each of those is a TLB miss too. Arrays of 2 MiB or more are
// therefore anonymous mappings aligned to 2 MiB and offered to the kernel
// for transparent huge pages (MADV_HUGEPAGE: a hint; without it they stay
// ordinary pages). Smaller ones come from operator new.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr std::size_t kHuge = std::size_t{2} << 20;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U> &) {}

  static std::size_t mapped_size(std::size_t n) {
    return (n * sizeof(T) + kHuge - 1) & ~(kHuge - 1);
  }

  T *allocate(std::size_t n) {
    if (n * sizeof(T) < kHuge)
      return static_cast<T *>(::operator new (n * sizeof(T), std::align_val_t{alignof(T)}));
    const std::size_t size = mapped_size(n);
    void *raw =
        mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
      throw std::bad_alloc();
    // Keep the 2 MiB-aligned part only.
    auto start = reinterpret_cast<std::uintptr_t>(raw);
    auto aligned = (start + kHuge - 1) & ~(std::uintptr_t{kHuge} - 1);
    if (aligned != start)
      munmap(raw, aligned - start);
    if (std::size_t tail = kHuge - (aligned - start); tail != 0)
      munmap(reinterpret_cast<void *>(aligned + size), tail);
    madvise(reinterpret_cast<void *>(aligned), size, MADV_HUGEPAGE);
    return reinterpret_cast<T *>(aligned);
  }

  void deallocate(T *p, std::size_t n) {
    if (n * sizeof(T) < kHuge)
      ::operator delete (p, std::align_val_t{alignof(T)});
    else
      munmap(p, mapped_size(n));
  }

  template <typename U>
  bool operator==(const HugePageAllocator<U> &) const {
    return true;
  }
};

struct alignas(64) FlowEntry
    : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>> {
  FlowKey4 packed;
  std::uint32_t hash = 0;  // flow hash of the key: the index probe start
  std::uint32_t service_id = 0;
  std::uint32_t backend_id = 0;
  std::uint16_t vxlan_sport = 0;  // the caller's cache (0: unknown); the table never reads it
  std::uint8_t referenced = 0;    // hit since it last moved in the LRU
  std::uint64_t last_seen = 0;
  std::uint64_t timeout = 0;  // ticks of inactivity after which the entry is dead

  stratus_flow_key key() const { return unpack_flow_key(packed); }
};
static_assert(sizeof(FlowEntry) == 64, "a flow entry is one cache line");

class FlowTable {
 public:
  // `capacity` entries at most, ever; limit() can lower the bound at run time.
  explicit FlowTable(std::uint32_t capacity);
  FlowTable(const FlowTable &) = delete;
  FlowTable &operator=(const FlowTable &) = delete;

  // Bulk lookups in stages: first the index line of each hash, then (once
  // those lines have arrived) the entry each names, then lookup().
  void prefetch_index(std::uint32_t hash) const { __builtin_prefetch(&index_[hash & mask_]); }
  void prefetch_entry(std::uint32_t hash) const {
    const Slot &s = index_[hash & mask_];
    if (s.ref != 0 && s.hash == hash)
      __builtin_prefetch(&entries_[s.ref - 1]);
  }

  // The live entry for `key`, refreshed (last_seen, referenced), or nullptr.
  // An expired entry is removed and reported as a miss.
  FlowEntry *lookup(const stratus_flow_key &key, std::uint32_t hash, std::uint64_t now);
  // Inline (below): once per load-balanced packet.
  FlowEntry *lookup(const FlowKey4 &key, std::uint32_t hash, std::uint64_t now);

  // Records a new flow (the key must not be present). When the table is at
  // its limit, the least recently used entry makes room first. nullptr when
  // the key does not fit (see above).
  FlowEntry *insert(const stratus_flow_key &key, std::uint32_t hash, std::uint32_t service_id,
                    std::uint32_t backend_id, std::uint64_t now, std::uint64_t timeout);
  FlowEntry &insert(const FlowKey4 &key, std::uint32_t hash, std::uint32_t service_id,
                    std::uint32_t backend_id, std::uint64_t now, std::uint64_t timeout);

  void erase(FlowEntry *e);

  // Removes up to `budget` expired entries from the cold end of the LRU
  // (giving referenced entries their second chance on the way, within the
  // same budget); returns how many went.
  std::uint32_t expire(std::uint64_t now, std::uint32_t budget);

  // Lowers (or restores) the number of entries kept, up to capacity();
  // excess entries are evicted from the cold end.
  void set_limit(std::uint32_t limit);

  std::uint32_t size() const { return size_; }
  std::uint32_t capacity() const { return static_cast<std::uint32_t>(entries_.size()); }
  // The memory a table of `capacity` entries takes (entries and index).
  static std::uint64_t bytes_for(std::uint32_t capacity) {
    return std::uint64_t{capacity} * sizeof(FlowEntry) +
           std::bit_ceil(std::uint64_t{capacity} * 2) * sizeof(Slot);
  }
  std::uint32_t limit() const { return limit_; }
  std::uint64_t evictions() const { return evictions_; }

  // The live entry for `key` without refreshing it (ICMP errors follow a
  // flow but must not keep it alive), or nullptr.
  const FlowEntry *peek(const stratus_flow_key &key, std::uint32_t hash, std::uint64_t now) const;
  const FlowEntry *peek(const FlowKey4 &key, std::uint32_t hash, std::uint64_t now) const;

  // Read access for the control path (run on the owning worker).
  const FlowEntry *find(const stratus_flow_key &key, std::uint32_t hash) const;
  // Roughly most recently used first (second chance); stops when `fn`
  // returns false.
  void for_each(const std::function<bool(const FlowEntry &)> &fn) const;

 private:
  using List = boost::intrusive::list<FlowEntry, boost::intrusive::constant_time_size<false>>;

  struct Slot {
    std::uint32_t hash = 0;
    std::uint32_t ref = 0;  // entry number + 1; 0 = empty slot
  };

  static constexpr std::uint32_t kNotFound = ~0u;
  // Inline: the per-packet probe.
  std::uint32_t find_slot(const FlowKey4 &key, std::uint32_t hash) const {
    for (std::uint32_t s = hash & mask_;; s = (s + 1) & mask_) {
      const Slot &slot = index_[s];
      if (slot.ref == 0)
        return kNotFound;
      if (slot.hash == hash && entries_[slot.ref - 1].packed == key)
        return s;
    }
  }
  std::uint32_t slot_of(const FlowEntry &e) const;
  void unindex(std::uint32_t slot);
  void remove(FlowEntry &e, std::uint32_t slot);
  void evict_one();

  std::vector<FlowEntry, HugePageAllocator<FlowEntry>> entries_;
  std::vector<Slot, HugePageAllocator<Slot>> index_;
  std::uint32_t mask_ = 0;
  List lru_;  // front = most recently moved
  List free_;
  std::uint32_t size_ = 0;
  std::uint32_t limit_ = 0;
  std::uint64_t evictions_ = 0;
};

// Written so that a clock read before last_seen (another core's TSC) never
// counts as expired.
inline bool flow_expired(const FlowEntry &e, std::uint64_t now) {
  return now > e.last_seen && now - e.last_seen > e.timeout;
}

inline FlowEntry *FlowTable::lookup(const FlowKey4 &k, std::uint32_t hash, std::uint64_t now) {
  std::uint32_t s = find_slot(k, hash);
  if (s == kNotFound)
    return nullptr;
  FlowEntry *e = &entries_[index_[s].ref - 1];
  if (flow_expired(*e, now)) [[unlikely]] {
    remove(*e, s);
    return nullptr;
  }
  e->last_seen = now;
  e->referenced = 1;
  return e;
}

inline bool flow_key_equal(const stratus_flow_key &a, const stratus_flow_key &b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace stratus::dpdk
