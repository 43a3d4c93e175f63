// The three actors of the randomized adversarial run (issue 15):
//  - the hostile client (nobody): watches, snapshots, forbidden and odd
//    paths over the protocol, every frame judged by the Oracle;
//  - nobody's mutator: random changes in H, symlink swaps of every component
//    it controls (a directory becomes a link to a secret tree, to "/", to "..");
//  - root's mutator: secrets appear and change in S, R, O and the decoys,
//    ancestors change their modes and ACLs, E/mid is swapped with a root-only
//    twin and with a link out of the export, nobody's directories are taken
//    away (made root-only in place, or moved out of the export) and then
//    filled with secrets.
// Each counts its operations in Shared and notes them in its ring.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "adversary.h"
#include "common/unique_fd.h"

namespace rnotify::adversary {

// Shared by the actors (adversary_actors.cc).
size_t pick(std::mt19937_64& rng, size_t n);  // 0..n-1
// RNOTIFY_ADVERSARY_ATTACKS lists this attack (links, swaps, take, modes,
// forbidden; default all, none for a control run).
bool attack(const std::string& name);
// "d2", "o0", ...: one of letters, then a digit; nobody's names.
std::string nobodyName(std::mt19937_64& rng, const char* letters);
// A directory path below root made of nobody's names, 0..maxDepth deep.
std::string randomBelow(std::mt19937_64& rng, const std::string& root, size_t maxDepth);

// Paths the hostile client may not know anything about: each must be
// refused with the same status and text (its own spelling aside). Not here:
// paths whose existence the kernel tells nobody anyway (R itself, which E
// lists; E/mid/x, where mid is searchable, so that stat(2) answers ENOENT
// or not), which a daemon resolving as the user may answer as the kernel does.
std::vector<std::string> forbiddenPaths(const Scene& scene);

// In a forked child, as nobody (adversary_client.cc), ratePerSecond requests a second at most (4
// in flight); returns the exit code (0: ran to the stop).
int runHostileClient(const Scene& scene, Shared& shared, uint64_t seed, uint64_t ratePerSecond);
// In a forked child, as nobody: ratePerSecond operations a second at most.
int runNobodyMutator(const Scene& scene, Shared& shared, uint64_t seed, uint64_t ratePerSecond);

class RootMutator {
 public:
  RootMutator(const Scene& scene, uint64_t seed);
  // One random operation.
  void step(Shared& shared);
  // Undoes the swaps, modes and ACLs of the export's own directories.
  void restore();

 private:
  void secretFile(Shared& shared);
  void ancestorMode(Shared& shared);
  void swapMid(Shared& shared);
  void confiscate(Shared& shared);

  const Scene& scene_;
  std::mt19937_64 rng_;
  UniqueFd exportFd_, hostileFd_;
  std::vector<UniqueFd> secretDirs_;  // fixed: where secrets appear
  std::vector<UniqueFd> taken_;       // nobody's directories taken away, then filled with secrets
  std::vector<UniqueFd> jails_;       // where taken directories go (outside E, or root-only)
  int swapped_ = 0;                   // 0: none; 1: mid <-> alt; 2: mid <-> lnk
  uint64_t counter_ = 0;
};

}  // namespace rnotify::adversary
