// A data plane without packets, for the stratusd/stratusctl end-to-end test:
// the generic Dataplane service over a recording driver, on the endpoint
// given as argument, until SIGTERM/SIGINT.
//
//   fake_dataplane NODE ENDPOINT
#include <signal.h>

#include <cstdio>

#include "tests/control/control_harness.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fake_dataplane NODE ENDPOINT\n");
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  stratus::control::testing::RecordingDriver driver;
  stratus::api::ServiceOptions o;
  o.node_name = argv[1];
  stratus::api::DataplaneService service(driver, o);
  auto server = stratus::api::serve(service, argv[2]);
  std::printf("fake_dataplane %s listening on %s\n", argv[1], argv[2]);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now());
  return 0;
}
