// The per-worker connection table of the load-balancer path (SPEC.md §4.2):
// a bounded set of flows, each pinned to the backend it was first given.
// Everything is allocated at construction: entries in one array, an LRU list
// and a free list threaded through them with Boost.Intrusive hooks, and an
// open-addressing index (linear probing, backward-shift deletion) of entry
// numbers. The fast path never allocates, never frees and never locks: a
// table belongs to one worker.
//
// Time is whatever monotonic tick the caller passes (TSC cycles in workers,
// a fake clock in tests); timeouts are in the same ticks.
#pragma once

#include <boost/intrusive/list.hpp>

#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "lb/flow_hash.h"

namespace stratus::dpdk {

struct FlowEntry
    : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>> {
  stratus_flow_key key{};
  std::uint32_t hash = 0;  // flow hash of key: the index probe start
  std::uint32_t service_id = 0;
  std::uint32_t backend_id = 0;
  std::uint64_t last_seen = 0;
  std::uint64_t timeout = 0;  // ticks of inactivity after which the entry is dead
};

class FlowTable {
 public:
  // `capacity` entries at most, ever; limit() can lower the bound at run time.
  explicit FlowTable(std::uint32_t capacity);
  FlowTable(const FlowTable &) = delete;
  FlowTable &operator=(const FlowTable &) = delete;

  // The live entry for `key`, refreshed (last_seen, LRU head), or nullptr.
  // An expired entry is removed and reported as a miss.
  FlowEntry *lookup(const stratus_flow_key &key, std::uint32_t hash, std::uint64_t now);

  // Records a new flow (the key must not be present). When the table is at
  // its limit, the least recently used entry makes room first.
  FlowEntry *insert(const stratus_flow_key &key, std::uint32_t hash, std::uint32_t service_id,
                    std::uint32_t backend_id, std::uint64_t now, std::uint64_t timeout);

  void erase(FlowEntry *e);

  // Removes up to `budget` expired entries from the cold end of the LRU;
  // returns how many went.
  std::uint32_t expire(std::uint64_t now, std::uint32_t budget);

  // Lowers (or restores) the number of entries kept, up to capacity();
  // excess entries are evicted from the cold end.
  void set_limit(std::uint32_t limit);

  std::uint32_t size() const { return size_; }
  std::uint32_t capacity() const { return static_cast<std::uint32_t>(entries_.size()); }
  std::uint32_t limit() const { return limit_; }
  std::uint64_t evictions() const { return evictions_; }

  // The live entry for `key` without refreshing it (ICMP errors follow a
  // flow but must not keep it alive), or nullptr.
  const FlowEntry *peek(const stratus_flow_key &key, std::uint32_t hash, std::uint64_t now) const;

  // Read access for the control path (run on the owning worker).
  const FlowEntry *find(const stratus_flow_key &key, std::uint32_t hash) const;
  // Most recently used first; stops when `fn` returns false.
  void for_each(const std::function<bool(const FlowEntry &)> &fn) const;

 private:
  using List = boost::intrusive::list<FlowEntry, boost::intrusive::constant_time_size<false>>;

  std::uint32_t find_slot(const stratus_flow_key &key, std::uint32_t hash) const;
  void unindex(std::uint32_t slot);

  std::vector<FlowEntry> entries_;
  std::vector<std::uint32_t> index_;  // entry number + 1; 0 = empty slot
  std::uint32_t mask_ = 0;
  List lru_;  // front = most recently used
  List free_;
  std::uint32_t size_ = 0;
  std::uint32_t limit_ = 0;
  std::uint64_t evictions_ = 0;
};

inline bool flow_key_equal(const stratus_flow_key &a, const stratus_flow_key &b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace stratus::dpdk
