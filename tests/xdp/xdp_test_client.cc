// A small Dataplane API client for the netns test (tests/xdp/netns_test.py):
//
//   xdp_test_client push ENDPOINT FILE TABLESET GENERATION
//       full sync of a table set from a file in the fixture format
//       (tests/fixtures/README.md, "cases" may be empty); services without a
//       Maglev table get one from lb/maglev.h
//   xdp_test_client counters ENDPOINT
//       one "kind name value" line per counter
//   xdp_test_client state ENDPOINT
//       generation, digest, flows
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "config/tables.h"
#include "control/api/convert.h"
#include "control/api/dataplane.grpc.pb.h"
#include "lb/maglev.h"
#include "tests/fixtures/fixture.h"

namespace {

namespace pb = stratus::dataplane::v1;

std::unique_ptr<pb::Dataplane::Stub> connect(const std::string &endpoint) {
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    throw std::runtime_error("cannot connect to " + endpoint);
  }
  return pb::Dataplane::NewStub(channel);
}

void fill_maglev(stratus::Tables &t) {
  for (auto &s : t.services) {
    if (!s.maglev.empty() || s.backends.empty())
      continue;
    std::vector<stratus::lb::MaglevBackend> bs;
    for (const auto &b : s.backends) {
      bs.push_back({b.name, b.state == stratus::BackendState::kActive ? b.weight : 0});
    }
    s.maglev = stratus::lb::maglev_table(bs, s.maglev_size);
  }
}

int push(const std::string &endpoint, const std::string &file, const std::string &set,
         std::uint64_t generation) {
  auto fixtures = stratus::fixtures::load(file);
  auto it = fixtures.tables.find(set);
  if (it == fixtures.tables.end())
    throw std::runtime_error("no table set " + set + " in " + file);
  stratus::Tables t = it->second;
  fill_maglev(t);
  if (auto errors = stratus::check(t); !errors.empty()) {
    for (const auto &e : errors)
      std::cerr << "xdp_test_client: " << e << "\n";
    return 1;
  }
  pb::TxnHeader header;
  header.set_generation(generation);
  header.set_full(true);
  auto stream = stratus::api::chunk(header, stratus::api::full_sync_ops(t));

  auto stub = connect(endpoint);
  grpc::ClientContext ctx;
  pb::ApplyReply reply;
  auto writer = stub->Apply(&ctx, &reply);
  for (const auto &req : stream) {
    if (!writer->Write(req))
      break;
  }
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  if (!st.ok()) {
    std::cerr << "xdp_test_client: Apply failed: " << st.error_message() << "\n";
    return 1;
  }
  std::cout << "generation " << reply.generation() << " digest " << reply.digest() << " install_us "
            << reply.install_us() << "\n";
  return 0;
}

int counters(const std::string &endpoint) {
  auto stub = connect(endpoint);
  grpc::ClientContext ctx;
  pb::CountersReply r;
  grpc::Status st = stub->GetCounters(&ctx, pb::CountersRequest(), &r);
  if (!st.ok()) {
    std::cerr << "xdp_test_client: GetCounters failed: " << st.error_message() << "\n";
    return 1;
  }
  for (const auto &p : r.ports()) {
    std::cout << "port_rx_packets " << p.port() << " " << p.rx().packets() << "\n";
    std::cout << "port_tx_packets " << p.port() << " " << p.tx().packets() << "\n";
  }
  for (const auto &s : r.services()) {
    std::cout << "service_packets " << s.id() << " " << s.fwd().packets() << "\n";
    for (const auto &b : s.backends()) {
      std::cout << "backend_new_flows " << b.name() << " " << b.new_flows() << "\n";
      std::cout << "backend_packets " << b.name() << " " << b.fwd().packets() << "\n";
    }
  }
  for (const auto &d : r.drops())
    std::cout << "drops " << d.reason() << " " << d.packets() << "\n";
  std::cout << "flow_entries - " << r.flow_entries() << "\n";
  std::cout << "arp_replies - " << r.arp_replies() << "\n";
  std::cout << "passed_to_host - " << r.passed_to_host() << "\n";
  return 0;
}

int state(const std::string &endpoint) {
  auto stub = connect(endpoint);
  grpc::ClientContext ctx;
  pb::StateReply r;
  grpc::Status st = stub->GetState(&ctx, pb::StateRequest(), &r);
  if (!st.ok()) {
    std::cerr << "xdp_test_client: GetState failed: " << st.error_message() << "\n";
    return 1;
  }
  std::cout << "generation " << r.generation() << "\ndigest " << r.digest() << "\nflows "
            << r.flows() << "\ninstance " << r.instance_id() << "\n";
  for (const auto &p : r.ports())
    std::cout << "port " << p.name() << " " << p.mode() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "push" && argc == 6)
      return push(argv[2], argv[3], argv[4], std::stoull(argv[5]));
    if (cmd == "counters" && argc == 3)
      return counters(argv[2]);
    if (cmd == "state" && argc == 3)
      return state(argv[2]);
    std::cerr << "usage: xdp_test_client push ENDPOINT FILE TABLESET GENERATION\n"
                 "       xdp_test_client counters|state ENDPOINT\n";
    return 2;
  } catch (const std::exception &e) {
    std::cerr << "xdp_test_client: " << e.what() << "\n";
    return 1;
  }
}
