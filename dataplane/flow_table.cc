#include "dataplane/flow_table.h"

#include <bit>
#include <stdexcept>

namespace stratus::dpdk {

namespace {

// How many referenced entries an eviction moves back to the head before it
// evicts the coldest one anyway: bounds the work of one insert.
constexpr std::uint32_t kSecondChances = 8;

// How many live, referenced entries one expire() call moves from the cold
// end back to the head: a move touches up to three random cache lines, and
// with every entry hit (a busy table) each call would otherwise spend its
// whole budget moving entries rather than finding expired ones.
constexpr std::uint32_t kExpireRotations = 1;
}  // namespace

FlowTable::FlowTable(std::uint32_t capacity) : entries_(capacity), limit_(capacity) {
  if (capacity == 0)
    throw std::invalid_argument("flow table capacity must be > 0");
  // Load factor at most 1/2 keeps linear-probe chains short.
  std::uint32_t slots = std::bit_ceil(capacity * 2u);
  index_.assign(slots, Slot{});
  mask_ = slots - 1;
  for (auto &e : entries_)
    free_.push_back(e);
}

std::uint32_t FlowTable::slot_of(const FlowEntry &e) const {
  const auto ref = static_cast<std::uint32_t>(&e - entries_.data()) + 1;
  for (std::uint32_t s = e.hash & mask_;; s = (s + 1) & mask_) {
    if (index_[s].ref == ref)
      return s;
    if (index_[s].ref == 0)
      return kNotFound;
  }
}

const FlowEntry *FlowTable::find(const stratus_flow_key &key, std::uint32_t hash) const {
  FlowKey4 k;
  if (!pack_flow_key(key, &k))
    return nullptr;
  std::uint32_t s = find_slot(k, hash);
  return s == kNotFound ? nullptr : &entries_[index_[s].ref - 1];
}

const FlowEntry *FlowTable::peek(const stratus_flow_key &key, std::uint32_t hash,
                                 std::uint64_t now) const {
  FlowKey4 k;
  return pack_flow_key(key, &k) ? peek(k, hash, now) : nullptr;
}

const FlowEntry *FlowTable::peek(const FlowKey4 &key, std::uint32_t hash, std::uint64_t now) const {
  std::uint32_t s = find_slot(key, hash);
  if (s == kNotFound)
    return nullptr;
  const FlowEntry *e = &entries_[index_[s].ref - 1];
  return !flow_expired(*e, now) ? e : nullptr;
}

FlowEntry *FlowTable::lookup(const stratus_flow_key &key, std::uint32_t hash, std::uint64_t now) {
  FlowKey4 k;
  return pack_flow_key(key, &k) ? lookup(k, hash, now) : nullptr;
}

void FlowTable::evict_one() {
  for (std::uint32_t i = 0; i < kSecondChances && lru_.back().referenced != 0; ++i) {
    FlowEntry &e = lru_.back();
    e.referenced = 0;
    lru_.splice(lru_.begin(), lru_, lru_.iterator_to(e));
  }
  erase(&lru_.back());
  ++evictions_;
}

FlowEntry *FlowTable::insert(const stratus_flow_key &key, std::uint32_t hash,
                             std::uint32_t service_id, std::uint32_t backend_id, std::uint64_t now,
                             std::uint64_t timeout) {
  FlowKey4 k;
  if (!pack_flow_key(key, &k))
    return nullptr;
  return &insert(k, hash, service_id, backend_id, now, timeout);
}

FlowEntry &FlowTable::insert(const FlowKey4 &k, std::uint32_t hash, std::uint32_t service_id,
                             std::uint32_t backend_id, std::uint64_t now, std::uint64_t timeout) {
  while (size_ >= limit_ && !lru_.empty())
    evict_one();
  FlowEntry &e = free_.front();
  free_.pop_front();
  e.packed = k;
  e.hash = hash;
  e.service_id = service_id;
  e.backend_id = backend_id;
  e.vxlan_sport = 0;
  e.referenced = 0;
  e.last_seen = now;
  e.timeout = timeout;
  lru_.push_front(e);
  std::uint32_t s = hash & mask_;
  while (index_[s].ref != 0)
    s = (s + 1) & mask_;
  index_[s] = Slot{hash, static_cast<std::uint32_t>(&e - entries_.data()) + 1};
  ++size_;
  return e;
}

void FlowTable::remove(FlowEntry &e, std::uint32_t slot) {
  if (slot != kNotFound)
    unindex(slot);
  lru_.erase(lru_.iterator_to(e));
  free_.push_front(e);
  --size_;
}

void FlowTable::erase(FlowEntry *e) {
  remove(*e, slot_of(*e));
}

// Backward-shift deletion: pull later members of the probe chain into the
// hole so that lookups never need tombstones.
void FlowTable::unindex(std::uint32_t hole) {
  std::uint32_t j = hole;
  for (;;) {
    j = (j + 1) & mask_;
    const Slot v = index_[j];
    if (v.ref == 0)
      break;
    std::uint32_t home = v.hash & mask_;
    // Move slot j into the hole unless its home lies cyclically in (hole, j].
    bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      index_[hole] = v;
      hole = j;
    }
  }
  index_[hole] = Slot{};
}

std::uint32_t FlowTable::expire(std::uint64_t now, std::uint32_t budget) {
  std::uint32_t removed = 0;
  std::uint32_t rotations = 0;
  for (std::uint32_t step = 0; step < budget && !lru_.empty(); ++step) {
    FlowEntry &e = lru_.back();
    if (flow_expired(e, now)) {
      erase(&e);
      ++removed;
    } else if (e.referenced != 0 && rotations < kExpireRotations) {
      // Seen since it last moved: its place is nearer the head, and
      // entries behind it may have expired meanwhile.
      e.referenced = 0;
      lru_.splice(lru_.begin(), lru_, lru_.iterator_to(e));
      ++rotations;
    } else {
      break;
    }
  }
  return removed;
}

void FlowTable::set_limit(std::uint32_t limit) {
  limit_ = limit == 0 || limit > capacity() ? capacity() : limit;
  while (size_ > limit_)
    evict_one();
}

void FlowTable::for_each(const std::function<bool(const FlowEntry &)> &fn) const {
  for (const FlowEntry &e : lru_) {
    if (!fn(e))
      return;
  }
}

}  // namespace stratus::dpdk
