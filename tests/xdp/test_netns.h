// A private network namespace with one veth device per data-plane port,
// named (and MAC-addressed) as the packet fixtures say, entered by the
// calling thread: BPF_PROG_TEST_RUN needs a real ingress ifindex, and the
// devmap needs real devices. Shared by tests/xdp and bench/xdp.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "config/tables.h"

namespace stratus::xdp::test_support {

// The test's network namespace: created with `ip netns`, entered by the
// main thread (which runs every test), removed at exit.
class TestNetns {
 public:
  // `prefix` names the namespace (prefix + pid) and identifies stale ones.
  explicit TestNetns(std::string prefix = "stratus-xdp-test-") : prefix_(std::move(prefix)) {}
  TestNetns(const TestNetns &) = delete;
  TestNetns &operator=(const TestNetns &) = delete;

  std::string name() const { return prefix_ + std::to_string(::getpid()); }

  // Removes namespaces that earlier runs left behind when they crashed.
  void remove_stale() const {
    std::error_code ec;
    for (const auto &entry : std::filesystem::directory_iterator("/run/netns", ec)) {
      std::string n = entry.path().filename();
      const std::string &prefix = prefix_;
      if (n.rfind(prefix, 0) != 0)
        continue;
      int pid = std::atoi(n.c_str() + prefix.size());
      if (pid > 0 && ::kill(pid, 0) == 0)
        continue;
      run("ip netns del " + n);
    }
  }

  static int run(const std::string &cmd) {
    int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  // Creates the namespace with one veth device per port (name and MAC as
  // the fixtures say) and moves this thread into it.
  bool enter(const std::map<std::string, MacAddress> &ports, std::string *why) {
    home_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_ < 0 || run("ip netns add " + name()) != 0) {
      *why = "cannot create a network namespace (ip netns add)";
      return false;
    }
    created_ = true;
    for (const auto &[port, mac] : ports) {
      // veth rather than dummy: the kernel may lack the dummy driver.
      std::string cmd = "ip -n " + name() + " link add " + port;
      if (!mac.is_zero())
        cmd += " address " + mac.str();
      cmd += " type veth peer name " + port.substr(0, 10) + "-p";
      if (run(cmd) != 0 || run("ip -n " + name() + " link set " + port + " up") != 0) {
        *why = "cannot create veth device " + port;
        return false;
      }
    }
    int fd = ::open(("/run/netns/" + name()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      *why = "cannot enter the namespace (setns)";
      if (fd >= 0)
        ::close(fd);
      return false;
    }
    ::close(fd);
    return true;
  }

  ~TestNetns() {
    if (home_ >= 0) {
      ::setns(home_, CLONE_NEWNET);
      ::close(home_);
    }
    if (created_)
      run("ip netns del " + name());
  }

 private:
  std::string prefix_;
  int home_ = -1;
  bool created_ = false;
};

}  // namespace stratus::xdp::test_support
