#include "control/api/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "control/api/convert.h"
#include "control/api/explain.h"
#include "lb/drop_reason.h"

namespace stratus::api {

namespace {

std::string random_instance_id() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(dist(rd)));
  return buf;
}

std::uint64_t now_unix_s() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string join(const std::vector<std::string> &lines) {
  std::string out;
  for (const auto &l : lines) {
    if (!out.empty())
      out += "\n";
    out += l;
  }
  return out;
}

// Writes `data` to `path` so that a reader sees the old file or the new
// one, never a torn write.
bool write_atomically(const std::string &path, const std::string &data) {
  std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path())
    std::filesystem::create_directories(p.parent_path(), ec);
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f)
      return false;
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.flush();
    if (!f)
      return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Where each key sits in a canonical (sorted by key) table; keys no longer
// there (deleted later in the transaction) are left out.
template <typename T, typename Key>
std::vector<std::size_t> positions(const std::vector<T> &table, std::vector<Key> keys,
                                   Key (*key_of)(const T &)) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::vector<std::size_t> out;
  out.reserve(keys.size());
  for (const auto &k : keys) {
    if (const T *entry = find_canonical(table, k, key_of))
      out.push_back(static_cast<std::size_t>(entry - table.data()));
  }
  return out;
}

}  // namespace

const std::vector<double> DataplaneService::kLatencyBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

DataplaneService::DataplaneService(DataplaneDriver &driver, ServiceOptions options)
    : driver_(driver),
      options_(std::move(options)),
      instance_id_(random_instance_id()),
      started_unix_s_(now_unix_s()),
      tables_(std::make_shared<const Tables>()) {
  stats_.latency_buckets.assign(kLatencyBounds.size(), 0);
  if (!options_.state_file.empty())
    persist_thread_ = std::thread([this] { persist_loop(); });
  spare_thread_ = std::thread([this] { spare_loop(); });
}

DataplaneService::~DataplaneService() {
  {
    std::lock_guard lock(spare_mu_);
    spare_stop_ = true;
  }
  spare_cv_.notify_all();
  spare_thread_.join();
  {
    std::lock_guard lock(persist_mu_);
    persist_stop_ = true;
  }
  persist_cv_.notify_all();
  if (persist_thread_.joinable())
    persist_thread_.join();
}

std::uint64_t DataplaneService::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

std::uint64_t DataplaneService::table_digest() const {
  std::lock_guard lock(mu_);
  return digest_;
}

std::shared_ptr<const Tables> DataplaneService::tables() const {
  std::lock_guard lock(mu_);
  return tables_;
}

DataplaneService::ApplyStats DataplaneService::apply_stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void DataplaneService::record(bool ok, double seconds) {
  std::lock_guard lock(mu_);
  (ok ? stats_.applied : stats_.failed)++;
  if (!ok)
    return;
  stats_.latency_count++;
  stats_.latency_sum_s += seconds;
  for (std::size_t i = 0; i < kLatencyBounds.size(); ++i) {
    if (seconds <= kLatencyBounds[i])
      stats_.latency_buckets[i]++;
  }
}

bool DataplaneService::restore() {
  if (options_.state_file.empty())
    return true;
  std::ifstream f(options_.state_file, std::ios::binary);
  if (!f)
    return true;  // nothing saved yet
  std::stringstream buf;
  buf << f.rdbuf();
  pb::ApplyRequest saved;
  if (!saved.ParseFromString(buf.str()) || !saved.has_header()) {
    std::cerr << "stratus: state file " << options_.state_file << " is corrupt; starting empty\n";
    return false;
  }
  pb::ApplyReply reply;
  grpc::Status st = apply({saved}, &reply);
  if (!st.ok()) {
    std::cerr << "stratus: state file " << options_.state_file
              << " does not apply: " << st.error_message() << "; starting empty\n";
    return false;
  }
  std::cerr << "stratus: restored generation " << reply.generation() << " (digest "
            << digest_hex(reply.digest()) << ") from " << options_.state_file << "\n";
  return true;
}

grpc::Status DataplaneService::apply(const std::vector<pb::ApplyRequest> &stream,
                                     pb::ApplyReply *reply) {
  auto started = std::chrono::steady_clock::now();
  auto fail = [&](grpc::StatusCode code, const std::string &msg) {
    record(false, 0);
    return grpc::Status(code, msg);
  };
  if (stream.empty() || !stream.front().has_header()) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT,
                "the first Apply message must carry the header");
  }
  const pb::TxnHeader &h = stream.front().header();
  std::lock_guard apply_lock(apply_mu_);
  std::shared_ptr<const Tables> current;
  std::uint64_t current_generation, current_digest;
  {
    std::lock_guard lock(mu_);
    current = tables_;
    current_generation = generation_;
    current_digest = tables_digest_;
  }

  if (h.generation() == 0) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT, "generation must be positive");
  }
  if (!h.full()) {
    if (h.base_generation() != current_generation) {
      return fail(grpc::StatusCode::FAILED_PRECONDITION,
                  "delta based on generation " + std::to_string(h.base_generation()) +
                      " but the data plane is at generation " + std::to_string(current_generation));
    }
    if (h.generation() <= h.base_generation()) {
      return fail(grpc::StatusCode::INVALID_ARGUMENT,
                  "generation " + std::to_string(h.generation()) + " does not advance base " +
                      std::to_string(h.base_generation()));
    }
  }

  // The tables to edit. A delta reuses the spare tables (the ones before the
  // last Apply) brought up to date by replaying the last Apply's operations:
  // O(last delta + this delta), where a copy of the live tables would cost
  // O(tables) in copying and first-touch page faults (~90 ms at 100k routes
  // and 1k Maglev tables of 10007 slots).
  std::shared_ptr<Tables> next;
  if (!h.full())
    next = take_spare();
  if (!next)
    next = std::make_shared<Tables>(h.full() ? Tables{} : *current);
  // Whatever happens below, the spare is gone until this Apply succeeds.
  spare_.reset();
  last_ops_.clear();
  // The digest after the transaction: the one before plus what the editor
  // changed, so a delta costs O(its operations) here, not O(the tables).
  std::uint64_t d = h.full() ? digest(*next) : current_digest;
  std::uint32_t ops = 0;
  TxnChanges changes;
  try {
    TxnEditor editor(*next);
    for (std::size_t m = 0; m < stream.size(); ++m) {
      if (m > 0 && stream[m].has_header()) {
        throw DecodeError("message " + std::to_string(m) + " repeats the header");
      }
      for (const auto &op : stream[m].ops()) {
        editor.apply(op);
        ++ops;
      }
    }
    editor.finish();
    d += editor.digest_delta();
    changes = editor.changes();
  } catch (const DecodeError &e) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT,
                std::string("operation ") + std::to_string(ops) + ": " + e.what());
  }
  canonicalize(*next);
  // A delta that left the node, next hops and VRFs alone is checked in its
  // changed routes and services (the rest passed before); anything else, or
  // any doubt, gets the full check and its messages.
  bool checked = !h.full() && !changes.node_nexthops_vrfs &&
                 check_changed(*next, positions(next->routes, changes.routes, route_key_of),
                               positions(next->services, changes.services, service_key_of));
  if (!checked) {
    if (auto errors = check(*next); !errors.empty())
      return fail(grpc::StatusCode::INVALID_ARGUMENT, "tables rejected:\n" + join(errors));
  }
  if (h.expect_digest() != 0 && h.expect_digest() != d) {
    return fail(grpc::StatusCode::ABORTED, "digest after the transaction is " + digest_hex(d) +
                                               ", the sender expected " +
                                               digest_hex(h.expect_digest()));
  }
  try {
    if (!h.full() && !changes.node_nexthops_vrfs) {
      DataplaneDriver::TouchedKeys touched{std::move(changes.routes), std::move(changes.services)};
      touched.routes.insert(touched.routes.end(), changes.deleted_routes.begin(),
                            changes.deleted_routes.end());
      touched.services.insert(touched.services.end(), changes.deleted_services.begin(),
                              changes.deleted_services.end());
      driver_.install_delta(*current, *next, touched);
    } else {
      driver_.install(*current, *next);
    }
  } catch (const std::exception &e) {
    return fail(grpc::StatusCode::INTERNAL,
                std::string("install failed, old tables kept: ") + e.what());
  }
  // The old live tables become the spare, one replay behind.
  spare_ = std::move(live_mut_);
  live_mut_ = next;
  if (!h.full()) {
    for (const auto &m : stream) {
      for (const auto &op : m.ops())
        last_ops_.push_back(op);
    }
  } else {
    // A full sync is not worth keeping as a replay log: the spare thread
    // copies the new tables instead, off the Apply path.
    spare_.reset();
    {
      std::lock_guard lock(spare_mu_);
      spare_source_ = next;
    }
    spare_cv_.notify_one();
  }
  std::shared_ptr<const Tables> live = std::move(next);
  {
    std::lock_guard lock(mu_);
    tables_ = live;
    generation_ = h.generation();
    digest_ = d;
    tables_digest_ = d;
  }
  if (!options_.state_file.empty()) {
    {
      std::lock_guard lock(persist_mu_);
      persist_next_ = live;
      persist_generation_ = h.generation();
    }
    persist_cv_.notify_one();
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  record(true, seconds);
  reply->set_generation(h.generation());
  reply->set_digest(d);
  reply->set_ops_applied(ops);
  reply->set_install_us(static_cast<std::uint64_t>(seconds * 1e6));
  return grpc::Status::OK;
}

std::shared_ptr<Tables> DataplaneService::take_spare() {
  // Only when nothing else holds it (a reader of an old snapshot, the
  // persistence thread): it is about to change.
  if (!spare_ || spare_.use_count() != 1)
    return nullptr;
  std::shared_ptr<Tables> t = std::move(spare_);
  try {
    TxnEditor editor(*t);
    for (const auto &op : last_ops_)
      editor.apply(op);
    editor.finish();
  } catch (const DecodeError &) {
    return nullptr;  // cannot happen: these operations applied once already
  }
  canonicalize(*t);
  return t;
}

void DataplaneService::spare_loop() {
  for (;;) {
    std::shared_ptr<const Tables> source;
    {
      std::unique_lock lock(spare_mu_);
      spare_cv_.wait(lock, [&] { return spare_stop_ || spare_source_; });
      if (spare_stop_)
        return;
      source = std::move(spare_source_);
      spare_source_.reset();
    }
    auto copy = std::make_shared<Tables>(*source);
    std::lock_guard apply_lock(apply_mu_);
    // Still the live tables, and no spare made since: the copy is the spare
    // with nothing to replay.
    if (live_mut_ == source && !spare_) {
      spare_ = std::move(copy);
      last_ops_.clear();
    }
  }
}

void DataplaneService::persist_loop() {
  for (;;) {
    std::shared_ptr<const Tables> snapshot;
    std::uint64_t gen = 0;
    {
      std::unique_lock lock(persist_mu_);
      persist_cv_.wait(lock, [&] { return persist_stop_ || persist_next_; });
      if (!persist_next_ && persist_stop_)
        return;
      snapshot = std::move(persist_next_);
      persist_next_.reset();
      gen = persist_generation_;
    }
    pb::ApplyRequest saved;
    saved.mutable_header()->set_generation(gen);
    saved.mutable_header()->set_full(true);
    for (auto &op : full_sync_ops(*snapshot))
      *saved.add_ops() = std::move(op);
    if (!write_atomically(options_.state_file, saved.SerializeAsString())) {
      std::cerr << "stratus: cannot write state file " << options_.state_file << "\n";
    }
  }
}

grpc::Status DataplaneService::Apply(grpc::ServerContext *,
                                     grpc::ServerReader<pb::ApplyRequest> *reader,
                                     pb::ApplyReply *reply) {
  std::vector<pb::ApplyRequest> stream;
  pb::ApplyRequest msg;
  while (reader->Read(&msg))
    stream.push_back(std::move(msg));
  return apply(stream, reply);
}

grpc::Status DataplaneService::GetState(grpc::ServerContext *, const pb::StateRequest *req,
                                        pb::StateReply *reply) {
  std::shared_ptr<const Tables> t;
  {
    std::lock_guard lock(mu_);
    t = tables_;
    reply->set_generation(generation_);
    reply->set_digest(digest_);
  }
  reply->set_node(t->node.name.empty() ? options_.node_name : t->node.name);
  reply->set_kind(options_.kind == DataplaneKind::kXdp ? pb::DATAPLANE_XDP : pb::DATAPLANE_DPDK);
  reply->set_instance_id(instance_id_);
  reply->set_started_unix_s(started_unix_s_);
  for (auto &p : driver_.ports())
    *reply->add_ports() = std::move(p);
  reply->set_vrfs(static_cast<std::uint32_t>(t->vrfs.size()));
  reply->set_routes(static_cast<std::uint32_t>(t->routes.size()));
  reply->set_services(static_cast<std::uint32_t>(t->services.size()));
  std::uint32_t backends = 0;
  for (const auto &s : t->services)
    backends += static_cast<std::uint32_t>(s.backends.size());
  reply->set_backends(backends);
  if (!req->skip_flows())
    reply->set_flows(driver_.flow_count());
  reply->set_version(STRATUS_VERSION);
  return grpc::Status::OK;
}

grpc::Status DataplaneService::ReadTables(grpc::ServerContext *, const pb::ReadTablesRequest *,
                                          grpc::ServerWriter<pb::TablesChunk> *writer) {
  std::shared_ptr<const Tables> t = tables();
  pb::TxnHeader unused;
  for (auto &req : chunk(unused, full_sync_ops(*t))) {
    pb::TablesChunk c;
    *c.mutable_ops() = std::move(*req.mutable_ops());
    if (!writer->Write(c))
      break;
  }
  return grpc::Status::OK;
}

void DataplaneService::counters(pb::CountersReply *out) {
  driver_.counters(out);
  std::shared_ptr<const Tables> t = tables();
  for (auto &v : *out->mutable_vrfs()) {
    for (const auto &vrf : t->vrfs) {
      if (vrf.id == v.vrf()) {
        v.set_vni(vrf.vni);
        v.set_tenant(vrf.tenant);
      }
    }
  }
  for (auto &s : *out->mutable_services()) {
    for (const auto &svc : t->services) {
      if (svc.id != s.id())
        continue;
      s.set_name(svc.name);
      for (auto &b : *s.mutable_backends()) {
        for (const auto &be : svc.backends) {
          if (be.id != b.id())
            continue;
          b.set_name(be.name);
          b.set_state(be.state == BackendState::kActive     ? pb::BACKEND_ACTIVE
                      : be.state == BackendState::kDraining ? pb::BACKEND_DRAINING
                                                            : pb::BACKEND_DOWN);
        }
      }
    }
  }
}

grpc::Status DataplaneService::GetCounters(grpc::ServerContext *, const pb::CountersRequest *,
                                           pb::CountersReply *reply) {
  counters(reply);
  return grpc::Status::OK;
}

grpc::Status DataplaneService::Explain(grpc::ServerContext *, const pb::ExplainRequest *req,
                                       pb::ExplainReply *reply) {
  std::shared_ptr<const Tables> t;
  std::uint64_t gen;
  {
    std::lock_guard lock(mu_);
    t = tables_;
    gen = generation_;
  }
  *reply =
      explain(*t, gen, *req, [this](const stratus_flow_key &k) { return driver_.lookup_flow(k); });
  return grpc::Status::OK;
}

grpc::Status DataplaneService::DumpFlows(grpc::ServerContext *ctx, const pb::FlowsRequest *req,
                                         grpc::ServerWriter<pb::Flow> *writer) {
  std::uint32_t sent = 0;
  driver_.dump_flows(*req, [&](const pb::Flow &f) {
    if (ctx->IsCancelled())
      return false;
    if (req->filter_service() && f.service_id() != req->service_id())
      return true;
    if (!writer->Write(f))
      return false;
    ++sent;
    return req->limit() == 0 || sent < req->limit();
  });
  return grpc::Status::OK;
}

std::unique_ptr<grpc::Server> serve(grpc::Service &service, const std::string &endpoint) {
  std::string address = endpoint;
  std::string socket_path;
  if (endpoint.rfind("unix:", 0) == 0) {
    socket_path = endpoint.substr(5);
    while (socket_path.rfind("//", 0) == 0)
      socket_path.erase(0, 1);
    std::error_code ec;
    std::filesystem::path p(socket_path);
    if (p.has_parent_path())
      std::filesystem::create_directories(p.parent_path(), ec);
    ::unlink(socket_path.c_str());  // a stale socket from a previous run
    address = "unix:" + socket_path;
  }
  grpc::ServerBuilder builder;
  int port = -1;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           socket_path.empty() ? &port : nullptr);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || (socket_path.empty() && port <= 0)) {
    throw std::runtime_error("cannot listen on " + endpoint);
  }
  if (!socket_path.empty())
    ::chmod(socket_path.c_str(), 0660);
  return server;
}

}  // namespace stratus::api
