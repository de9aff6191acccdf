// The Maglev lookup-table builder (Eisenbud et al., "Maglev: A Fast and
// Reliable Software Network Load Balancer", NSDI'16, §3.4), with weights, and
// the slot diff between two tables. Pure code: the control daemon builds each
// service's table here once and pushes it whole; explain and the tests call it
// too.
//
// The table depends only on the backends' names, weights and M, never on the
// order in which the backends are listed (see "turn order" below) nor on the
// machine (the name hashes below are defined byte by byte): every control
// daemon computes the same table for the same service.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stratus::lb {

struct MaglevBackend {
  std::string name;      // unique within the service; fixes the backend's permutation
  std::uint32_t weight;  // 0: takes no slot (down or draining) but keeps its index
};

// Largest table size accepted: a prime just under 2^20 (config kMaxMaglevSize).
inline constexpr std::uint32_t kMaglevMaxSize = 1048573;

// slot -> index into `backends`. m must be a prime no larger than
// kMaglevMaxSize and no smaller than backends.size() (every backend counts,
// zero weight included, so that a health change cannot make a valid service
// invalid); names must be unique. Otherwise throws std::invalid_argument
// naming the problem. Empty when the total weight is 0 (no backend takes new
// flows).
//
// Backend i's preference list is (offset_i + j * skip_i) mod m, j = 0, 1, ...
// with offset_i = maglev_offset_hash(name) mod m and skip_i =
// maglev_skip_hash(name) mod (m - 1) + 1; on its turn a backend takes the
// next slot of its list still free. Backends of weight > 0 take turns; the
// turn order is ascending maglev_offset_hash(name), ties by name:
//  - all weights equal: the paper's loop, one turn each per round in turn
//    order until the table is full (slot counts differ by at most one);
//  - otherwise backend i gets exactly q_i turns, its quota: m * w_i / sum(w)
//    rounded down, plus one for the largest remainders (ties in turn order)
//    until the quotas add up to m, so |q_i - m * w_i / sum(w)| < 1. Its k-th
//    turn falls in round ceil(k * q_max / q_i); within a round, turn order.
std::vector<std::uint32_t> maglev_table(const std::vector<MaglevBackend> &backends,
                                        std::uint32_t m);

// Slots whose owner, compared by backend NAME, differs between two tables:
// `before` indexes `before_backends`, `after` indexes `after_backends`, so a
// backend that only moved to another index is no change. Ascending slot
// numbers. An empty table (no backend) differs from a non-empty one in every
// slot; two empty tables in none. Two non-empty tables must have the same
// size and only valid indices, else std::invalid_argument (when M changes the
// whole table is replaced anyway).
std::vector<std::uint32_t> changed_slots(const std::vector<MaglevBackend> &before_backends,
                                         const std::vector<std::uint32_t> &before,
                                         const std::vector<MaglevBackend> &after_backends,
                                         const std::vector<std::uint32_t> &after);

// The two name hashes that fix a backend's permutation and turn order: 64-bit
// FNV-1a over the name's bytes from the offset basis XOR `seed`, then
// MurmurHash3's 64-bit finaliser (fmix64); the offset and skip hashes use two
// fixed seeds. Part of the cross-node contract: changing them moves every
// flow (tests/lb/reference_vectors.py pins them).
std::uint64_t maglev_name_hash(std::string_view name, std::uint64_t seed);
std::uint64_t maglev_offset_hash(std::string_view name);
std::uint64_t maglev_skip_hash(std::string_view name);

}  // namespace stratus::lb
