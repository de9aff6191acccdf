#include "dataplane/flow_table.h"

#include <bit>
#include <stdexcept>

namespace stratus::dpdk {

namespace {
constexpr std::uint32_t kNotFound = ~0u;

// Written so that a clock read before last_seen (another core's TSC) never
// counts as expired.
inline bool expired(const FlowEntry &e, std::uint64_t now) {
  return now > e.last_seen && now - e.last_seen > e.timeout;
}
}  // namespace

FlowTable::FlowTable(std::uint32_t capacity) : entries_(capacity), limit_(capacity) {
  if (capacity == 0)
    throw std::invalid_argument("flow table capacity must be > 0");
  // Load factor at most 1/2 keeps linear-probe chains short.
  std::uint32_t slots = std::bit_ceil(capacity * 2u);
  index_.assign(slots, 0);
  mask_ = slots - 1;
  for (auto &e : entries_)
    free_.push_back(e);
}

std::uint32_t FlowTable::find_slot(const stratus_flow_key &key, std::uint32_t hash) const {
  for (std::uint32_t s = hash & mask_;; s = (s + 1) & mask_) {
    std::uint32_t v = index_[s];
    if (v == 0)
      return kNotFound;
    const FlowEntry &e = entries_[v - 1];
    if (e.hash == hash && flow_key_equal(e.key, key))
      return s;
  }
}

const FlowEntry *FlowTable::find(const stratus_flow_key &key, std::uint32_t hash) const {
  std::uint32_t s = find_slot(key, hash);
  return s == kNotFound ? nullptr : &entries_[index_[s] - 1];
}

const FlowEntry *FlowTable::peek(const stratus_flow_key &key, std::uint32_t hash,
                                 std::uint64_t now) const {
  const FlowEntry *e = find(key, hash);
  return e != nullptr && !expired(*e, now) ? e : nullptr;
}

FlowEntry *FlowTable::lookup(const stratus_flow_key &key, std::uint32_t hash, std::uint64_t now) {
  std::uint32_t s = find_slot(key, hash);
  if (s == kNotFound)
    return nullptr;
  FlowEntry *e = &entries_[index_[s] - 1];
  if (expired(*e, now)) {
    unindex(s);
    lru_.erase(lru_.iterator_to(*e));
    free_.push_front(*e);
    --size_;
    return nullptr;
  }
  e->last_seen = now;
  lru_.splice(lru_.begin(), lru_, lru_.iterator_to(*e));
  return e;
}

FlowEntry *FlowTable::insert(const stratus_flow_key &key, std::uint32_t hash,
                             std::uint32_t service_id, std::uint32_t backend_id, std::uint64_t now,
                             std::uint64_t timeout) {
  while (size_ >= limit_ && !lru_.empty()) {
    erase(&lru_.back());
    ++evictions_;
  }
  FlowEntry &e = free_.front();
  free_.pop_front();
  e.key = key;
  e.hash = hash;
  e.service_id = service_id;
  e.backend_id = backend_id;
  e.last_seen = now;
  e.timeout = timeout;
  lru_.push_front(e);
  std::uint32_t s = hash & mask_;
  while (index_[s] != 0)
    s = (s + 1) & mask_;
  index_[s] = static_cast<std::uint32_t>(&e - entries_.data()) + 1;
  ++size_;
  return &e;
}

void FlowTable::erase(FlowEntry *e) {
  std::uint32_t s = find_slot(e->key, e->hash);
  if (s != kNotFound)
    unindex(s);
  lru_.erase(lru_.iterator_to(*e));
  free_.push_front(*e);
  --size_;
}

// Backward-shift deletion: pull later members of the probe chain into the
// hole so that lookups never need tombstones.
void FlowTable::unindex(std::uint32_t hole) {
  std::uint32_t j = hole;
  for (;;) {
    j = (j + 1) & mask_;
    std::uint32_t v = index_[j];
    if (v == 0)
      break;
    std::uint32_t home = entries_[v - 1].hash & mask_;
    // Move entry j into the hole unless its home lies cyclically in (hole, j].
    bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      index_[hole] = v;
      hole = j;
    }
  }
  index_[hole] = 0;
}

std::uint32_t FlowTable::expire(std::uint64_t now, std::uint32_t budget) {
  std::uint32_t n = 0;
  while (n < budget && !lru_.empty()) {
    FlowEntry &e = lru_.back();
    if (!expired(e, now))
      break;
    erase(&e);
    ++n;
  }
  return n;
}

void FlowTable::set_limit(std::uint32_t limit) {
  limit_ = limit == 0 || limit > capacity() ? capacity() : limit;
  while (size_ > limit_) {
    erase(&lru_.back());
    ++evictions_;
  }
}

void FlowTable::for_each(const std::function<bool(const FlowEntry &)> &fn) const {
  for (const FlowEntry &e : lru_) {
    if (!fn(e))
      return;
  }
}

}  // namespace stratus::dpdk
