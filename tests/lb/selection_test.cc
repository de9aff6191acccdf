// lb/selection.h: the flow key under hash flags, and the keep-or-reselect
// policy of SPEC §4.2, checked against stratus::BackendState (config/tables.h)
// as the data planes use it.
#include "lb/selection.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "config/tables.h"
#include "lb/maglev.h"

namespace stratus::lb {
namespace {

FlowTuple tcp_v4() {
  FlowTuple t;
  t.vrf = 7;
  t.src = IpAddress::parse("10.1.2.3")->bytes;
  t.dst = IpAddress::parse("192.0.2.10")->bytes;
  t.proto = 6;
  t.sport = 40000;
  t.dport = 443;
  return t;
}

TEST(FlowKey, FieldsAsOnTheWire) {
  stratus_flow_key key = make_flow_key(tcp_v4(), STRATUS_HASH_DEFAULT);
  EXPECT_EQ(key.src[0], IpAddress::parse("10.1.2.3")->v4_be());
  EXPECT_EQ(key.src[1] | key.src[2] | key.src[3], 0u);
  EXPECT_EQ(key.dst[0], IpAddress::parse("192.0.2.10")->v4_be());
  EXPECT_EQ(key.vrf, 7u);
  EXPECT_EQ(key.sport, htons(40000));
  EXPECT_EQ(key.dport, htons(443));
  EXPECT_EQ(key.proto, 6);
  EXPECT_EQ(key.pad[0] | key.pad[1] | key.pad[2], 0);
}

TEST(FlowKey, Ipv6AddressesFillAllWords) {
  FlowTuple t = tcp_v4();
  auto src = IpAddress::parse("2001:db8::1");
  t.src = src->bytes;
  stratus_flow_key key = make_flow_key(t, STRATUS_HASH_DEFAULT);
  EXPECT_EQ(std::memcmp(key.src, src->bytes.data(), 16), 0);
}

TEST(FlowKey, FlagsClearTheirFields) {
  const FlowTuple t = tcp_v4();
  const stratus_flow_key full = make_flow_key(t, STRATUS_HASH_DEFAULT);
  struct Case {
    const char *name;
    std::uint32_t cleared;
  } cases[] = {{"src ip", STRATUS_HASH_SRC_IP},
               {"dst ip", STRATUS_HASH_DST_IP},
               {"src port", STRATUS_HASH_SRC_PORT},
               {"dst port", STRATUS_HASH_DST_PORT},
               {"proto", STRATUS_HASH_PROTO}};
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    stratus_flow_key k = make_flow_key(t, STRATUS_HASH_DEFAULT & ~c.cleared);
    EXPECT_EQ(k.src[0], c.cleared == STRATUS_HASH_SRC_IP ? 0u : full.src[0]);
    EXPECT_EQ(k.dst[0], c.cleared == STRATUS_HASH_DST_IP ? 0u : full.dst[0]);
    EXPECT_EQ(k.sport, c.cleared == STRATUS_HASH_SRC_PORT ? 0 : full.sport);
    EXPECT_EQ(k.dport, c.cleared == STRATUS_HASH_DST_PORT ? 0 : full.dport);
    EXPECT_EQ(k.proto, c.cleared == STRATUS_HASH_PROTO ? 0 : full.proto);
    EXPECT_EQ(k.vrf, full.vrf);  // the VRF is always part of the key
    EXPECT_NE(stratus_flow_hash(&k, 1), stratus_flow_hash(&full, 1));
  }
}

TEST(FlowKey, ClientAffinityIgnoresSourcePort) {
  const std::uint32_t affinity = STRATUS_HASH_DEFAULT & ~STRATUS_HASH_SRC_PORT;
  FlowTuple a = tcp_v4(), b = tcp_v4();
  b.sport = 51000;
  stratus_flow_key ka = make_flow_key(a, affinity), kb = make_flow_key(b, affinity);
  EXPECT_EQ(std::memcmp(&ka, &kb, sizeof ka), 0);
  EXPECT_EQ(stratus_flow_hash(&ka, 9), stratus_flow_hash(&kb, 9));
}

TEST(Selection, KeepsFlowsOf) {
  EXPECT_TRUE(keeps_flows(BackendState::kActive));
  EXPECT_TRUE(keeps_flows(BackendState::kDraining));
  EXPECT_FALSE(keeps_flows(BackendState::kDown));
}

class SelectionPolicy : public ::testing::Test {
 protected:
  std::vector<MaglevBackend> backends{{"a", 1}, {"b", 1}, {"c", 0}};  // c: draining or down
  std::vector<std::uint32_t> table = maglev_table(backends, 13);
};

TEST_F(SelectionPolicy, MissTakesTheMaglevSlot) {
  for (std::uint32_t h : {0u, 5u, 12u, 13u, 0xffffffffu}) {
    Selection s = select_on_miss(table, h);
    EXPECT_EQ(s.reason, SelectReason::kNew);
    EXPECT_EQ(s.slot, h % 13);
    EXPECT_EQ(s.backend, table[h % 13]);
    EXPECT_TRUE(s.record());
  }
}

TEST_F(SelectionPolicy, HitOnActiveOrDrainingKeepsTheBackend) {
  for (BackendState st : {BackendState::kActive, BackendState::kDraining}) {
    SCOPED_TRACE(std::string(to_string(st)));
    // Backend 2 owns no slot (weight 0): only the connection table keeps it.
    Selection s = select_on_hit(2, st, table, 4);
    EXPECT_EQ(s.reason, SelectReason::kKept);
    EXPECT_EQ(s.backend, 2u);
    EXPECT_EQ(s.slot, kNone);
    EXPECT_FALSE(s.record());
  }
}

TEST_F(SelectionPolicy, HitOnDownReselects) {
  Selection s = select_on_hit(2, BackendState::kDown, table, 4);
  EXPECT_EQ(s.reason, SelectReason::kReselected);
  EXPECT_EQ(s.slot, 4u);
  EXPECT_EQ(s.backend, table[4]);
  EXPECT_NE(s.backend, 2u);
  EXPECT_TRUE(s.record());
}

TEST_F(SelectionPolicy, EmptyTableSelectsNothing) {
  std::vector<std::uint32_t> empty;
  for (Selection s : {select_on_miss(empty, 4), select_on_hit(1, BackendState::kDown, empty, 4)}) {
    EXPECT_EQ(s.reason, SelectReason::kNoBackend);
    EXPECT_EQ(s.backend, kNone);
    EXPECT_FALSE(s.record());
  }
  // A draining backend still keeps its flows when nobody takes new ones.
  EXPECT_EQ(select_on_hit(1, BackendState::kDraining, empty, 4).reason, SelectReason::kKept);
}

TEST_F(SelectionPolicy, SameFlowSameBackendFromKeyToSlot) {
  // The path explain and the DPDK worker share: tuple -> key -> hash -> slot.
  stratus_flow_key key = make_flow_key(tcp_v4(), STRATUS_HASH_DEFAULT);
  std::uint32_t h = stratus_flow_hash(&key, 0x5eed);
  Selection s = select_on_miss(table, h);
  EXPECT_EQ(s.slot, maglev_slot(h, 13));
  EXPECT_EQ(s.backend, table[h % 13]);
}

}  // namespace
}  // namespace stratus::lb
