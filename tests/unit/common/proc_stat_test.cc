// The one /proc/PID/stat parser: a comm with spaces and ')' does not shift
// the fields, a short or garbled line is refused, and it reads this process
// and a zombie child as the kernel shows them.
#include "common/proc_stat.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace rnotify {
namespace {

// Fields 3..22 of a line, with the given comm; utime 7, stime 5, start 123456.
std::string statLine(const std::string& comm) {
  return "4242 (" + comm + ") S 17 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 123456 1000000 200\n";
}

TEST(ProcStat, ACommWithSpacesAndParenthesesDoesNotShiftTheFields) {
  for (const std::string comm : {"sshd", "a b", "x) 9 9 (y", ") )"}) {
    auto stat = parseProcStat(statLine(comm));
    ASSERT_TRUE(stat.has_value()) << comm;
    EXPECT_EQ(stat->state, 'S') << comm;
    EXPECT_EQ(stat->ppid, 17) << comm;
    EXPECT_EQ(stat->utime, 7u) << comm;
    EXPECT_EQ(stat->stime, 5u) << comm;
    EXPECT_EQ(stat->startTime, 123456u) << comm;
  }
}

TEST(ProcStat, AShortOrGarbledLineIsRefused) {
  const std::string whole = statLine("sshd");
  EXPECT_FALSE(parseProcStat(whole.substr(0, whole.find("123456"))).has_value()) << "ends before field 22";
  EXPECT_FALSE(parseProcStat("4242 sshd S 17").has_value()) << "no comm";
  EXPECT_FALSE(parseProcStat("").has_value());
  std::string garbled = whole;
  garbled.replace(garbled.find(" 17 "), 4, " x7 ");
  EXPECT_FALSE(parseProcStat(garbled).has_value()) << "a ppid that is no number";
}

TEST(ProcStat, ReadsThisProcessAndAZombieChild) {
  auto self = readProcStat(::getpid());
  ASSERT_TRUE(self.has_value());
  EXPECT_EQ(self->state, 'R');
  EXPECT_EQ(self->ppid, ::getppid());
  EXPECT_GT(self->startTime, 0u);

  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  // Waits for its exit without reaping it: a zombie whose parent is this process.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  std::optional<ProcStat> zombie = readProcStat(child);
  ASSERT_TRUE(zombie.has_value());
  EXPECT_EQ(zombie->state, 'Z');
  EXPECT_EQ(zombie->ppid, ::getpid());
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);

  EXPECT_FALSE(readProcStat(::getpid(), "/nonexistent-proc").has_value());
}

}  // namespace
}  // namespace rnotify
