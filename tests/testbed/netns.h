// Netns and VethLink: distinct "hosts" on one machine. A test creates network
// namespaces joined by veth pairs with addresses in 10.213.0.0/16 that exist
// only inside those namespaces, so no traffic can leave them and concurrent
// tests cannot collide. Processes enter with `nsenter --net=/run/netns/NAME`,
// not `ip netns exec`: the latter also makes a new mount namespace, which
// would hide an sshfs mount made inside from the test.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace rnotify::testbed {

class Netns {
 public:
  // Creates namespace "rnt-<testpid>-<random>" with lo up; throws on failure.
  // First removes namespaces left by earlier test runs that crashed.
  Netns();
  // Kills every process still inside, then deletes the namespace.
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  // Whether `ip netns add` works here (root, iproute2); probed once.
  static bool available();

  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  // argv prefixed with nsenter so that it runs inside.
  std::vector<std::string> wrap(const std::vector<std::string>& argv) const;
  // Pids of processes whose network namespace is this one.
  std::vector<int> pids() const;

 private:
  std::string name_;
};

// A veth pair between two namespaces (or a namespace and the host, b ==
// nullptr) with a /30 each side: 10.213.<subnet>.1 on a, .2 on b. Deleting
// either namespace deletes the pair; a host end is removed by the destructor.
class VethLink {
 public:
  VethLink(const Netns& a, const Netns* b, int subnet);
  ~VethLink();
  VethLink(const VethLink&) = delete;
  VethLink& operator=(const VethLink&) = delete;

  const std::string& addressA() const { return addressA_; }
  const std::string& addressB() const { return addressB_; }

 private:
  std::string hostEnd_;  // non-empty when b is the host
  std::string addressA_, addressB_;
};

}  // namespace rnotify::testbed
