// The per-worker connection table: LRU eviction at capacity, timeouts on an
// injected clock, index integrity under churn, and no allocation after
// construction.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <algorithm>
#include <cstring>
#include <iterator>
#include <vector>

#include "dataplane/flow_hash_lanes.h"
#include "dataplane/flow_table.h"

#include "tests/dataplane/alloc_counter.h"

namespace stratus::dpdk {
namespace {

stratus_flow_key key_of(std::uint32_t client, std::uint16_t sport) {
  stratus_flow_key k{};
  k.src[0] = client;
  k.dst[0] = 0x0a71cbcb;
  k.vrf = 1;
  k.sport = sport;
  k.dport = 80;
  k.proto = 6;
  return k;
}

std::uint32_t hash_of(const stratus_flow_key &k) {
  return stratus_flow_hash(&k, 7);
}

FlowEntry *lookup(FlowTable &t, const stratus_flow_key &k, std::uint64_t now) {
  return t.lookup(k, hash_of(k), now);
}

FlowEntry *insert(FlowTable &t, const stratus_flow_key &k, std::uint32_t backend, std::uint64_t now,
                  std::uint64_t timeout = 1000) {
  return t.insert(k, hash_of(k), 0, backend, now, timeout);
}

TEST(FlowTable, InsertThenHit) {
  FlowTable t(16);
  auto k = key_of(1, 1000);
  EXPECT_EQ(lookup(t, k, 0), nullptr);
  insert(t, k, 42, 0);
  FlowEntry *e = lookup(t, k, 1);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->backend_id, 42u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(lookup(t, key_of(1, 1001), 1), nullptr);
}

TEST(FlowTable, EvictsLeastRecentlyUsedAtCapacity) {
  FlowTable t(4);
  for (std::uint16_t i = 0; i < 4; ++i)
    insert(t, key_of(1, i), i, i);
  // Touch flow 0 so that flow 1 is now the coldest.
  ASSERT_NE(lookup(t, key_of(1, 0), 10), nullptr);
  insert(t, key_of(1, 100), 100, 11);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(lookup(t, key_of(1, 1), 12), nullptr) << "coldest flow evicted";
  EXPECT_NE(lookup(t, key_of(1, 0), 12), nullptr);
  EXPECT_NE(lookup(t, key_of(1, 2), 12), nullptr);
  EXPECT_NE(lookup(t, key_of(1, 3), 12), nullptr);
  EXPECT_NE(lookup(t, key_of(1, 100), 12), nullptr);
}

TEST(FlowTable, LimitBelowCapacityEvicts) {
  FlowTable t(8);
  for (std::uint16_t i = 0; i < 8; ++i)
    insert(t, key_of(2, i), i, i);
  t.set_limit(3);
  EXPECT_EQ(t.size(), 3u);
  // The three most recent survive.
  EXPECT_NE(lookup(t, key_of(2, 7), 20), nullptr);
  EXPECT_NE(lookup(t, key_of(2, 6), 20), nullptr);
  EXPECT_NE(lookup(t, key_of(2, 5), 20), nullptr);
  EXPECT_EQ(lookup(t, key_of(2, 4), 20), nullptr);
  insert(t, key_of(2, 50), 50, 21);
  EXPECT_EQ(t.size(), 3u);
}

TEST(FlowTable, ExpiresAfterTimeoutOnInjectedClock) {
  FlowTable t(16);
  auto k = key_of(3, 1);
  insert(t, k, 9, /*now=*/100, /*timeout=*/50);
  EXPECT_NE(lookup(t, k, 150), nullptr) << "exactly at the timeout it is still alive";
  // The hit at 150 refreshed it: alive until 200.
  EXPECT_NE(lookup(t, k, 200), nullptr);
  EXPECT_EQ(lookup(t, k, 251), nullptr) << "idle for longer than the timeout";
  EXPECT_EQ(t.size(), 0u);
}

TEST(FlowTable, PeekNeitherRefreshesNorRemoves) {
  FlowTable t(16);
  auto k = key_of(5, 1);
  insert(t, k, 3, /*now=*/0, /*timeout=*/10);
  ASSERT_NE(t.peek(k, hash_of(k), 8), nullptr);
  // Had peek refreshed it at 8, it would live until 18.
  EXPECT_EQ(t.peek(k, hash_of(k), 11), nullptr) << "expired";
  EXPECT_EQ(t.size(), 1u) << "peek leaves removal to lookup/expire";
  EXPECT_EQ(lookup(t, k, 11), nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(FlowTable, ExpireSweepsIdleEntriesFromTheColdEnd) {
  FlowTable t(16);
  insert(t, key_of(4, 1), 1, 0, 10);   // expires after 10
  insert(t, key_of(4, 2), 2, 5, 10);   // after 15
  insert(t, key_of(4, 3), 3, 15, 10);  // after 25
  EXPECT_EQ(t.expire(20, 8), 2u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_NE(lookup(t, key_of(4, 3), 21), nullptr);
  EXPECT_EQ(t.expire(21, 8), 0u);
}

TEST(FlowTable, HitEntriesGetASecondChanceAtEviction) {
  FlowTable t(4);
  for (std::uint16_t i = 0; i < 4; ++i)
    insert(t, key_of(6, i), i, i);
  // Flows 0 and 1 are the coldest but were hit: flow 2 goes first.
  ASSERT_NE(lookup(t, key_of(6, 0), 10), nullptr);
  ASSERT_NE(lookup(t, key_of(6, 1), 10), nullptr);
  insert(t, key_of(6, 100), 100, 11);
  EXPECT_EQ(lookup(t, key_of(6, 2), 12), nullptr);
  EXPECT_NE(lookup(t, key_of(6, 0), 12), nullptr);
  EXPECT_NE(lookup(t, key_of(6, 1), 12), nullptr);
  EXPECT_NE(lookup(t, key_of(6, 3), 12), nullptr);
  EXPECT_EQ(t.evictions(), 1u);
}

TEST(FlowTable, EvictsEvenWhenEveryEntryWasHit) {
  FlowTable t(4);
  for (std::uint16_t i = 0; i < 4; ++i)
    insert(t, key_of(7, i), i, i);
  for (std::uint16_t i = 0; i < 4; ++i)
    ASSERT_NE(lookup(t, key_of(7, i), 10), nullptr);
  insert(t, key_of(7, 100), 100, 11);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_NE(lookup(t, key_of(7, 100), 12), nullptr);
}

TEST(FlowTable, ExpireLooksPastAHitEntryAtTheColdEnd) {
  FlowTable t(16);
  insert(t, key_of(8, 1), 1, /*now=*/0, /*timeout=*/1000);
  insert(t, key_of(8, 2), 2, /*now=*/1, /*timeout=*/10);
  // Flow 1 is at the cold end but alive (hit at 5); flow 2, nearer the
  // head, expired at 11.
  ASSERT_NE(lookup(t, key_of(8, 1), 5), nullptr);
  EXPECT_EQ(t.expire(20, 8), 1u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_NE(t.find(key_of(8, 1), hash_of(key_of(8, 1))), nullptr);
  EXPECT_EQ(t.find(key_of(8, 2), hash_of(key_of(8, 2))), nullptr);
}

TEST(FlowTable, KeysArePackedIpv4AndWiderOnesRefused) {
  auto k = key_of(0x0a000005, 4242);
  FlowKey4 packed;
  ASSERT_TRUE(pack_flow_key(k, &packed));
  EXPECT_TRUE(flow_key_equal(unpack_flow_key(packed), k));

  FlowTable t(16);
  insert(t, k, 5, 0);
  t.for_each([&](const FlowEntry &e) {
    EXPECT_TRUE(flow_key_equal(e.key(), k));
    return true;
  });
  auto v6 = k;
  v6.src[1] = 1;  // an IPv6 source
  EXPECT_FALSE(pack_flow_key(v6, &packed));
  EXPECT_EQ(insert(t, v6, 6, 0), nullptr);
  EXPECT_EQ(lookup(t, v6, 1), nullptr);
  EXPECT_EQ(t.size(), 1u);
  auto big_vrf = k;
  big_vrf.vrf = 1u << 24;
  EXPECT_FALSE(pack_flow_key(big_vrf, &packed));
}

// The lane-wise hash is lb/flow_hash.h's, key for key.
TEST(FlowHashLanes, EqualsTheSharedFlowHash) {
  std::mt19937 rng(4);
  FlowHashLanes<8> lanes;
  for (int round = 0; round < 200; ++round) {
    const std::uint32_t seed = rng();
    stratus_flow_key keys[8];
    for (unsigned l = 0; l < 8; ++l) {
      auto *w = reinterpret_cast<std::uint32_t *>(&keys[l]);
      for (unsigned i = 0; i < STRATUS_FLOW_KEY_WORDS; ++i)
        w[i] = round % 2 == 0 ? rng() : (i == 0 || i == 4 || i >= 8 ? rng() : 0);
      if (l % 2 == 0) {
        lanes.set_key(l, keys[l]);
      } else {
        keys[l].pad[0] = keys[l].pad[1] = keys[l].pad[2] = 0;
        std::uint32_t ports;
        std::memcpy(&ports, &keys[l].sport, 4);
        std::fill(std::begin(keys[l].src) + 1, std::end(keys[l].src), 0u);
        std::fill(std::begin(keys[l].dst) + 1, std::end(keys[l].dst), 0u);
        lanes.set_v4(l, keys[l].src[0], keys[l].dst[0], keys[l].vrf, ports, keys[l].proto);
      }
    }
    lanes.compute(seed);
    for (unsigned l = 0; l < 8; ++l)
      ASSERT_EQ(lanes.hash[l], stratus_flow_hash(&keys[l], seed)) << "round " << round;
  }
}

// The IPv4 lanes too, including keys with zero fields (a reduced key).
TEST(FlowHashLanesV4, EqualsTheSharedFlowHash) {
  std::mt19937 rng(5);
  FlowHashLanesV4<8> lanes;
  for (int round = 0; round < 200; ++round) {
    const std::uint32_t seed = rng();
    stratus_flow_key keys[8];
    for (unsigned l = 0; l < 8; ++l) {
      stratus_flow_key &k = keys[l];
      k = stratus_flow_key{};
      k.src[0] = rng();
      k.dst[0] = rng();
      k.vrf = rng() % 4096;
      k.sport = static_cast<std::uint16_t>(rng());
      k.dport = static_cast<std::uint16_t>(rng());
      k.proto = static_cast<std::uint8_t>(rng());
      if ((round + l) % 3 == 0)
        stratus_flow_key_reduce(&k, rng() & STRATUS_HASH_DEFAULT);
      std::uint32_t ports;
      std::memcpy(&ports, &k.sport, 4);
      lanes.set(l, k.src[0], k.dst[0], k.vrf, ports, k.proto);
    }
    lanes.compute(seed);
    for (unsigned l = 0; l < 8; ++l)
      ASSERT_EQ(lanes.hash[l], stratus_flow_hash(&keys[l], seed)) << "round " << round;
  }
}

TEST(FlowTable, IndexStaysConsistentUnderChurn) {
  // A model map checked against the table through random inserts, hits and
  // evictions in a small table (long probe chains, many backward shifts).
  FlowTable t(64);
  std::map<std::uint32_t, std::uint32_t> live;  // client -> backend, most recent kept by table
  std::mt19937 rng(1);
  std::uint64_t now = 0;
  for (int i = 0; i < 20000; ++i) {
    ++now;
    std::uint32_t client = rng() % 200;
    auto k = key_of(client, 7);
    FlowEntry *e = lookup(t, k, now);
    if (e != nullptr) {
      ASSERT_EQ(e->backend_id, live.at(client)) << "entry " << client;
      if (rng() % 4 == 0) {
        t.erase(e);
        live.erase(client);
      }
    } else {
      insert(t, k, client * 3, now, 1u << 30);
      live[client] = client * 3;
    }
    ASSERT_LE(t.size(), 64u);
  }
  // Every entry still in the table is found with its own backend.
  std::uint32_t found = 0;
  // The hash is recomputed from the unpacked key, in a temporary hashed
  // at once: through a plain 32-bit pointer, stratus_flow_hash could read
  // the key's words before the stores of its 16- and 8-bit fields (strict
  // aliasing), and this found nothing at -O2.
  t.for_each([&](const FlowEntry &e) {
    EXPECT_EQ(hash_of(e.key()), e.hash);
    const FlowEntry *f = t.find(e.key(), hash_of(e.key()));
    EXPECT_EQ(f, &e);
    ++found;
    return true;
  });
  EXPECT_EQ(found, t.size());
}

// What stratus-dpdk checks against the free memory before it makes a
// worker's table: a line per entry and two index slots of 8 bytes each.
TEST(FlowTable, BytesForCountsEntriesAndIndex) {
  EXPECT_EQ(FlowTable::bytes_for(1u << 20), (64u << 20) + (16u << 20));
  EXPECT_EQ(FlowTable::bytes_for(1000), 1000u * 64 + 2048u * 8);
}

TEST(AllocationCounter, CountsThisThreadsAllocations) {
  testing::AllocationCounter counter;
  volatile std::size_t n = 3;  // keeps the allocation from being elided
  std::vector<int> v(n);
  EXPECT_EQ(counter.count(), 1u);
  EXPECT_EQ(v.size(), 3u);
}

TEST(FlowTable, NoAllocationAfterConstruction) {
  FlowTable t(1024);
  testing::AllocationCounter counter;
  std::uint64_t now = 0;
  for (std::uint32_t i = 0; i < 5000; ++i) {
    auto k = key_of(i, static_cast<std::uint16_t>(i));
    if (lookup(t, k, ++now) == nullptr)
      insert(t, k, i, now, 100);
    t.expire(now, 4);
  }
  t.set_limit(10);
  EXPECT_EQ(counter.count(), 0u);
  EXPECT_EQ(t.size(), 10u);
}

}  // namespace
}  // namespace stratus::dpdk
