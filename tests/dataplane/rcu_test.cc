// Snapshot publication: a published snapshot is visible at once, and the
// one it replaces is freed only after every online worker has reported a
// quiescent state.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "dataplane/rcu.h"

namespace stratus::dpdk {
namespace {

std::unique_ptr<FibSnapshot> named(const std::string &name) {
  auto s = std::make_unique<FibSnapshot>();
  s->node_name = name;
  return s;
}

TEST(SnapshotPublisher, FirstPublishFreesNothing) {
  SnapshotPublisher pub(1);
  pub.publish(named("a"));
  ASSERT_NE(pub.current(), nullptr);
  EXPECT_EQ(pub.current()->node_name, "a");
  EXPECT_EQ(pub.freed(), 0u);
}

TEST(SnapshotPublisher, WithoutOnlineReadersOldIsFreedAtOnce) {
  SnapshotPublisher pub(2);
  pub.publish(named("a"));
  pub.publish(named("b"));
  EXPECT_EQ(pub.freed(), 1u);
  EXPECT_EQ(pub.current()->node_name, "b");
}

TEST(SnapshotPublisher, OldFreedOnlyAfterReaderIsQuiescent) {
  SnapshotPublisher pub(1);
  pub.register_reader(0);
  pub.publish(named("old"));

  // The reader takes the old snapshot and holds it until told to let go.
  std::atomic<bool> holding{false};
  std::atomic<bool> release{false};
  std::atomic<bool> saw_old_valid{false};
  std::thread reader([&] {
    pub.online(0);
    const FibSnapshot *s = pub.current();
    holding = true;
    while (!release)
      std::this_thread::yield();
    // Still readable: the writer must not have freed it.
    saw_old_valid = s->node_name == "old";
    pub.quiescent(0);
    pub.offline(0);
  });
  while (!holding)
    std::this_thread::yield();

  std::atomic<bool> published{false};
  std::thread writer([&] {
    pub.publish(named("new"));
    published = true;
  });
  // The swap is immediate even though the free waits.
  while (pub.current()->node_name != "new")
    std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(published.load()) << "publish returned while a reader held the old snapshot";
  EXPECT_EQ(pub.freed(), 0u);

  release = true;
  reader.join();
  writer.join();
  EXPECT_TRUE(saw_old_valid.load());
  EXPECT_TRUE(published.load());
  EXPECT_EQ(pub.freed(), 1u);
  pub.unregister_reader(0);
}

TEST(SnapshotPublisher, OfflineReaderDoesNotBlockGracePeriod) {
  SnapshotPublisher pub(2);
  pub.register_reader(0);
  pub.register_reader(1);
  pub.online(0);
  pub.offline(0);  // e.g. a worker asleep in its idle back-off
  pub.publish(named("a"));
  pub.publish(named("b"));
  EXPECT_EQ(pub.freed(), 1u);
  pub.unregister_reader(0);
  pub.unregister_reader(1);
}

}  // namespace
}  // namespace stratus::dpdk
