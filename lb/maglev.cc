#include "lb/maglev.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "lb/prime.h"

namespace stratus::lb {

namespace {

constexpr std::uint64_t kOffsetSeed = 0x6d61676c65762d6full;  // "maglev-o"
constexpr std::uint64_t kSkipSeed = 0x6d61676c65762d73ull;    // "maglev-s"

// A backend while the table fills: where its preference list goes next.
struct Cursor {
  std::uint32_t pos;          // next preferred slot to try
  std::uint32_t skip;         // in 1..m-1
  std::uint32_t index;        // into the caller's backends
  std::uint32_t inverse = 0;  // skip^-1 mod m once needed (never 0 then)
};

// x^-1 mod m for prime m and 0 < x < m: extended Euclid, with 32-bit
// divisions (a 64-bit divide costs several times more on x86).
std::uint32_t inverse_mod(std::uint32_t x, std::uint32_t m) {
  std::uint32_t r0 = m, r1 = x;
  std::int64_t t0 = 0, t1 = 1;
  while (r1 != 0) {
    std::uint32_t q = r0 / r1;
    std::uint32_t r2 = r0 - q * r1;
    std::int64_t t2 = t0 - static_cast<std::int64_t>(q) * t1;
    r0 = r1;
    r1 = r2;
    t0 = t1;
    t1 = t2;
  }
  return static_cast<std::uint32_t>(t0 < 0 ? t0 + m : t0);
}

// The table under construction. Two ways to find a backend's next free
// preferred slot, with the same answer:
//  - probing its list against a bitmap of taken slots (8 KiB for m = 65537,
//    so it stays in L1 while the probes jump around); a turn costs about
//    m / free probes, which is most of the work once the table is nearly full;
//  - for the last ~sqrt(m) free slots, computing for each free slot s its
//    place in the backend's list, j = (s - pos) * skip^-1 mod m, and taking
//    the smallest: `free` steps instead of m / free probes.
class Filler {
 public:
  explicit Filler(std::uint32_t m)
      : m_(m),
        scan_from_(m - std::min<std::uint32_t>(m, static_cast<std::uint32_t>(std::sqrt(m)))),
        barrett_(~std::uint64_t{0} / m),
        taken_((m + 63) / 64, 0),
        table_(m) {}

  // Turns from here on go through scan() instead of probe().
  std::uint32_t scan_from() const { return scan_from_; }

  // Gives backend c its next free preferred slot by walking its list. Four
  // places per step, one branch per step: the exit branch is what
  // mispredicts, and a bitmap read is cheap.
  [[gnu::always_inline]] void probe(Cursor &c) {
    std::uint32_t s1 = c.skip, s2 = add(s1, s1), s3 = add(s2, s1), s4 = add(s2, s2);
    std::uint32_t pos = c.pos;
    for (;;) {
      std::uint32_t p[4] = {pos, add(pos, s1), add(pos, s2), add(pos, s3)};
      unsigned busy = static_cast<unsigned>(is_taken(p[0]) | is_taken(p[1]) << 1 |
                                            is_taken(p[2]) << 2 | is_taken(p[3]) << 3);
      if (busy != 0xf) {
        pos = p[std::countr_one(busy)];
        break;
      }
      pos = add(pos, s4);
    }
    put(c, pos);
  }

  // The same, by the free-slot scan; once filled >= scan_from().
  void scan(Cursor &c) {
    if (free_.empty()) {
      free_.reserve(m_ - filled_);
      for (std::uint32_t s = 0; s < m_; ++s) {
        if (!(taken_[s >> 6] >> (s & 63) & 1))
          free_.push_back(s);
      }
    }
    if (c.inverse == 0)
      c.inverse = inverse_mod(c.skip, m_);
    std::uint64_t best_j = ~std::uint64_t{0};
    std::size_t best = 0;
    for (std::size_t k = 0; k < free_.size(); ++k) {
      std::uint64_t j = mod(std::uint64_t{free_[k] + m_ - c.pos} * c.inverse);
      if (j < best_j) {
        best_j = j;
        best = k;
      }
    }
    std::uint32_t slot = free_[best];
    free_[best] = free_.back();
    free_.pop_back();
    put(c, slot);
  }

  std::vector<std::uint32_t> release() { return std::move(table_); }

 private:
  // Backend c takes `slot`; its list goes on after it.
  void put(Cursor &c, std::uint32_t slot) {
    taken_[slot >> 6] |= std::uint64_t{1} << (slot & 63);
    table_[slot] = c.index;
    c.pos = add(slot, c.skip);
    ++filled_;
  }

  // x mod m for x < 2^64 (Barrett reduction: a multiply instead of a divide).
  std::uint64_t mod(std::uint64_t x) const {
    __extension__ using u128 = unsigned __int128;
    std::uint64_t q = static_cast<std::uint64_t>((static_cast<u128>(x) * barrett_) >> 64);
    std::uint64_t r = x - q * m_;
    return r >= m_ ? r - m_ : r;
  }

  // (a + b) mod m for a, b < m.
  std::uint32_t add(std::uint32_t a, std::uint32_t b) const {
    std::uint32_t r = a + b;
    return r >= m_ ? r - m_ : r;
  }

  std::uint64_t is_taken(std::uint32_t s) const { return taken_[s >> 6] >> (s & 63) & 1; }

  std::uint32_t m_;
  std::uint32_t scan_from_;  // filled count from which turns go through scan()
  std::uint64_t barrett_;    // floor((2^64 - 1) / m)
  std::uint32_t filled_ = 0;
  std::vector<std::uint64_t> taken_;
  std::vector<std::uint32_t> table_;
  std::vector<std::uint32_t> free_;  // the free slots, once scanning
};

void check_arguments(const std::vector<MaglevBackend> &backends, std::uint32_t m) {
  if (m > kMaglevMaxSize) {
    throw std::invalid_argument("maglev: table size " + std::to_string(m) +
                                " exceeds the maximum " + std::to_string(kMaglevMaxSize));
  }
  if (!is_prime(m)) {
    throw std::invalid_argument("maglev: table size " + std::to_string(m) + " is not a prime");
  }
  if (m < backends.size()) {
    throw std::invalid_argument("maglev: table size " + std::to_string(m) +
                                " is smaller than the number of backends (" +
                                std::to_string(backends.size()) + ")");
  }
}

// Each backend's share of the m slots: m * w_i / sum(w) rounded down, then
// one more for the largest remainders (ties in turn order) until they add up
// to m; so every quota is within one slot of the exact share.
std::vector<std::uint32_t> quotas(const std::vector<std::uint64_t> &weights, std::uint64_t w_sum,
                                  std::uint32_t m) {
  std::vector<std::uint32_t> q(weights.size());
  std::vector<std::pair<std::uint64_t, std::uint32_t>> remainders;  // (remainder, turn order)
  remainders.reserve(weights.size());
  std::uint64_t given = 0;
  for (std::uint32_t i = 0; i < weights.size(); ++i) {
    // m * w < 2^20 * 2^32: no overflow.
    std::uint64_t share = std::uint64_t{m} * weights[i];
    q[i] = static_cast<std::uint32_t>(share / w_sum);
    given += q[i];
    remainders.emplace_back(share % w_sum, i);
  }
  std::uint64_t left = m - given;  // < number of backends
  std::partial_sort(remainders.begin(), remainders.begin() + static_cast<std::ptrdiff_t>(left),
                    remainders.end(), [](const auto &a, const auto &b) {
                      return a.first != b.first ? a.first > b.first : a.second < b.second;
                    });
  for (std::uint64_t k = 0; k < left; ++k)
    ++q[remainders[k].second];
  return q;
}

// The weighted turn order: backend i's k-th turn (k = 1..q_i) falls in round
// ceil(k * q_max / q_i); within a round, turn order. Built with a counting
// sort on the round, which keeps turn order inside each round, in O(m).
std::vector<std::uint32_t> weighted_turns(const std::vector<std::uint32_t> &q) {
  std::uint32_t q_max = *std::max_element(q.begin(), q.end());
  // for_each_turn(f) calls f(i, round) for every turn, backends in turn order.
  auto for_each_turn = [&](auto &&f) {
    for (std::uint32_t i = 0; i < q.size(); ++i) {
      if (q[i] == 0)
        continue;
      // round = ceil(k * q_max / q_i), kept as quotient and remainder of
      // k * q_max by q_i so the loop needs no division.
      std::uint32_t step = q_max / q[i], extra = q_max % q[i];
      std::uint32_t quot = 0, rem = 0;
      for (std::uint32_t k = 1; k <= q[i]; ++k) {
        quot += step;
        rem += extra;
        if (rem >= q[i]) {
          rem -= q[i];
          ++quot;
        }
        f(i, quot + (rem > 0));
      }
    }
  };
  std::vector<std::uint32_t> start(std::size_t{q_max} + 2, 0);
  for_each_turn([&](std::uint32_t, std::uint32_t round) { ++start[round + 1]; });
  for (std::size_t r = 1; r < start.size(); ++r)
    start[r] += start[r - 1];
  std::vector<std::uint32_t> turns(start.back());
  for_each_turn([&](std::uint32_t i, std::uint32_t round) { turns[start[round]++] = i; });
  return turns;
}

// Plays the m turns; next_turn() gives the cursor of each, in order.
template <typename NextTurn>
std::vector<std::uint32_t> fill(std::vector<Cursor> &cursors, std::uint32_t m, NextTurn next_turn) {
  Filler f(m);
  std::uint32_t t = 0;
  for (; t < f.scan_from(); ++t)
    f.probe(cursors[next_turn()]);
  for (; t < m; ++t)
    f.scan(cursors[next_turn()]);
  return f.release();
}

}  // namespace

std::uint64_t maglev_name_hash(std::string_view name, std::uint64_t seed) {
  std::uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

std::uint64_t maglev_offset_hash(std::string_view name) {
  return maglev_name_hash(name, kOffsetSeed);
}

std::uint64_t maglev_skip_hash(std::string_view name) {
  return maglev_name_hash(name, kSkipSeed);
}

std::vector<std::uint32_t> maglev_table(const std::vector<MaglevBackend> &backends,
                                        std::uint32_t m) {
  check_arguments(backends, m);

  // Turn order: by offset hash, then name. It fixes who goes first in a
  // round, so the input order does not; and 64-bit keys sort faster than
  // names.
  struct Entry {
    std::uint64_t offset_hash;
    std::uint32_t index;
  };
  std::vector<Entry> order(backends.size());
  for (std::uint32_t i = 0; i < order.size(); ++i)
    order[i] = {maglev_offset_hash(backends[i].name), i};
  std::sort(order.begin(), order.end(), [&](const Entry &a, const Entry &b) {
    if (a.offset_hash != b.offset_hash)
      return a.offset_hash < b.offset_hash;
    return backends[a.index].name < backends[b.index].name;
  });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const std::string &name = backends[order[k].index].name;
    if (order[k - 1].offset_hash == order[k].offset_hash &&
        backends[order[k - 1].index].name == name) {
      throw std::invalid_argument("maglev: duplicate backend name \"" + name + "\"");
    }
  }

  std::vector<Cursor> cursors;
  std::vector<std::uint64_t> weights;
  cursors.reserve(order.size());
  weights.reserve(order.size());
  std::uint64_t w_max = 0;
  std::uint64_t w_sum = 0;
  for (const Entry &e : order) {
    const MaglevBackend &b = backends[e.index];
    if (b.weight == 0)
      continue;
    std::uint32_t offset = static_cast<std::uint32_t>(e.offset_hash % m);
    std::uint32_t skip = static_cast<std::uint32_t>(maglev_skip_hash(b.name) % (m - 1) + 1);
    cursors.push_back({offset, skip, e.index});
    weights.push_back(b.weight);
    w_max = std::max<std::uint64_t>(w_max, b.weight);
    w_sum += b.weight;
  }
  if (cursors.empty())
    return {};

  if (w_max * cursors.size() == w_sum) {
    // Equal weights: everyone takes one slot per round, the paper's loop.
    std::uint32_t i = 0;
    return fill(cursors, m, [&] {
      std::uint32_t turn = i;
      if (++i == cursors.size())
        i = 0;
      return turn;
    });
  }
  std::vector<std::uint32_t> turns = weighted_turns(quotas(weights, w_sum, m));
  std::size_t t = 0;
  return fill(cursors, m, [&] { return turns[t++]; });
}

std::vector<std::uint32_t> changed_slots(const std::vector<MaglevBackend> &before_backends,
                                         const std::vector<std::uint32_t> &before,
                                         const std::vector<MaglevBackend> &after_backends,
                                         const std::vector<std::uint32_t> &after) {
  std::vector<std::uint32_t> changed;
  if (before.empty() || after.empty()) {
    std::size_t n = std::max(before.size(), after.size());
    changed.reserve(n);
    for (std::uint32_t s = 0; s < n; ++s)
      changed.push_back(s);
    return changed;
  }
  if (before.size() != after.size()) {
    throw std::invalid_argument("maglev: cannot diff tables of " + std::to_string(before.size()) +
                                " and " + std::to_string(after.size()) + " slots");
  }
  constexpr std::uint32_t kGone = std::numeric_limits<std::uint32_t>::max();
  std::unordered_map<std::string_view, std::uint32_t> after_index;
  after_index.reserve(after_backends.size());
  for (std::uint32_t i = 0; i < after_backends.size(); ++i) {
    after_index.emplace(after_backends[i].name, i);
  }
  // before index -> after index of the same name (kGone: removed).
  std::vector<std::uint32_t> same(before_backends.size(), kGone);
  for (std::uint32_t i = 0; i < before_backends.size(); ++i) {
    auto it = after_index.find(before_backends[i].name);
    if (it != after_index.end())
      same[i] = it->second;
  }
  for (std::uint32_t s = 0; s < before.size(); ++s) {
    if (before[s] >= same.size() || after[s] >= after_backends.size()) {
      throw std::invalid_argument("maglev: slot " + std::to_string(s) +
                                  " refers to a backend index out of range");
    }
    if (same[before[s]] != after[s])
      changed.push_back(s);
  }
  return changed;
}

}  // namespace stratus::lb
