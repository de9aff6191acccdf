// Translation between config/tables.h values and the Dataplane API messages,
// and the transaction operations both ends compute: applying operations to a
// set of tables (the data plane side) and the operations that turn one set of
// tables into another (the control daemon side).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/tables.h"
#include "control/api/driver.h"

namespace stratus::api {

// A message that does not decode (an address of 5 bytes, a MAC of 3...).
// Carries the field path, e.g. "upsert_route.vtep: address must be 4 or 16 bytes".
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void to_proto(const IpAddress &in, pb::IpAddress *out);
void to_proto(const IpPrefix &in, pb::IpPrefix *out);
void to_proto(const NodeTable &in, pb::NodeTable *out);
void to_proto(const NextHop &in, pb::NextHop *out);
void to_proto(const Vrf &in, pb::Vrf *out);
void to_proto(const Route &in, pb::Route *out);
void to_proto(const Backend &in, pb::Backend *out);
void to_proto(const Service &in, pb::Service *out);

// Each throws DecodeError naming the field.
IpAddress from_proto(const pb::IpAddress &in, const std::string &field);
IpPrefix from_proto(const pb::IpPrefix &in, const std::string &field);
NodeTable from_proto(const pb::NodeTable &in);
NextHop from_proto(const pb::NextHop &in);
Vrf from_proto(const pb::Vrf &in);
Route from_proto(const pb::Route &in);
Backend from_proto(const pb::Backend &in, const std::string &field);
Service from_proto(const pb::Service &in);

// Applies a transaction's operations in order to `tables`: upserts replace
// by key, deleting a missing entry is a DecodeError. Finds entries by binary
// search when `tables` is canonical (else through an index of every table),
// so build one editor per transaction; call finish() at the end (new entries
// are then merged in order: canonical tables stay canonical). The caller
// runs check() afterwards.
// What a transaction touched: lets the data plane check only the changed
// entries (stratus::check_changed) when no table they depend on changed.
struct TxnChanges {
  bool node_nexthops_vrfs = false;                         // any operation on those tables
  std::vector<std::pair<std::uint32_t, IpPrefix>> routes;  // upserted route keys
  std::vector<std::uint32_t> services;                     // upserted service ids
  std::vector<std::pair<std::uint32_t, IpPrefix>> deleted_routes;
  std::vector<std::uint32_t> deleted_services;
};

class TxnEditor {
 public:
  explicit TxnEditor(Tables &tables);
  ~TxnEditor();
  void apply(const pb::TxnOp &op);
  void finish();
  // What the operations so far added to digest(tables) (mod 2^64): the
  // digest after the transaction is the one before plus this, in O(ops).
  std::uint64_t digest_delta() const;
  const TxnChanges &changes() const { return changes_; }

 private:
  struct Index;
  Tables &t_;
  std::unique_ptr<Index> index_;
  std::uint64_t node_delta_ = 0;
  TxnChanges changes_;
};

// One operation on its own (a TxnEditor for a single op).
void apply_op(const pb::TxnOp &op, Tables &tables);

// The operations that turn `from` into `to` (deletes first, then upserts;
// the node table only when it changed). Services are compared whole. With
// `digest_delta`, also adds to it what they add to digest() (mod 2^64), from
// the same walk: digest(to) == digest(from) + *digest_delta.
std::vector<pb::TxnOp> diff(const Tables &from, const Tables &to,
                            std::uint64_t *digest_delta = nullptr);

// All of `t` as full-sync operations.
std::vector<pb::TxnOp> full_sync_ops(const Tables &t);

// Splits operations into Apply stream messages of at most `max_bytes`
// serialized operations each (a single larger operation gets its own
// message); the first message carries `header`.
std::vector<pb::ApplyRequest> chunk(const pb::TxnHeader &header, std::vector<pb::TxnOp> ops,
                                    std::size_t max_bytes = 1 << 20);

}  // namespace stratus::api
