// ReflectionGate: what an own lookup may see while the reflector replays a
// change.
#include "fuse/reflection_gate.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

namespace rnotify::fuse {
namespace {

using Expect = ReflectionGate::Expect;

TEST(ReflectionGate, OwnIsTheReflectorThreadOnly) {
  ReflectionGate gate;
  EXPECT_FALSE(gate.isOwn(0));
  gate.setReflector(1234);
  EXPECT_TRUE(gate.isOwn(1234));
  EXPECT_FALSE(gate.isOwn(1235));
  EXPECT_FALSE(gate.isOwn(0));  // FORGET and friends carry no pid
}

TEST(ReflectionGate, AnnouncedEntriesUntilCleared) {
  ReflectionGate gate;
  EXPECT_FALSE(gate.active());
  gate.expect("a", "f", Expect::kGhost, S_IFREG);
  gate.expect("", "g", Expect::kAbsent);
  EXPECT_TRUE(gate.active());
  mode_t type = 0;
  EXPECT_EQ(gate.expected("a", "f", &type), Expect::kGhost);
  EXPECT_EQ(type, static_cast<mode_t>(S_IFREG));
  EXPECT_EQ(gate.expected("", "g", &type), Expect::kAbsent);
  EXPECT_EQ(gate.expected("", "f", &type), Expect::kNone);  // same name, other directory
  EXPECT_EQ(gate.expected("a", "g", &type), Expect::kNone);
  gate.clear();
  EXPECT_FALSE(gate.active());
  EXPECT_EQ(gate.expected("a", "f", &type), Expect::kNone);
}

// The directories on the way to an announced entry may be gone on SOURCE
// too: they are ghost directories.
TEST(ReflectionGate, DirectoriesOnTheWayAreGhostDirectories) {
  ReflectionGate gate;
  gate.expect("x/y/z", "f", Expect::kAbsent);
  mode_t type = 0;
  EXPECT_EQ(gate.expected("", "x", &type), Expect::kGhost);
  EXPECT_EQ(type, static_cast<mode_t>(S_IFDIR));
  EXPECT_EQ(gate.expected("x", "y", &type), Expect::kGhost);
  EXPECT_EQ(gate.expected("x/y", "z", &type), Expect::kGhost);
  EXPECT_EQ(gate.expected("x/y/z", "f", &type), Expect::kAbsent);
  EXPECT_EQ(gate.expected("", "xy", &type), Expect::kNone);  // a prefix of a name is not a component
  EXPECT_EQ(gate.expected("x", "yy", &type), Expect::kNone);
}

}  // namespace
}  // namespace rnotify::fuse
