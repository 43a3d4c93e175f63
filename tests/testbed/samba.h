// Samba: a throw-away smbd for one test. Its own smb.conf in a temp dir (every
// private, lock, state, cache and pid directory inside it), listening on
// 127.0.0.1 at a free port, SMB2 and later only, exporting one temp directory
// as the share "share" with kernel change notify. The SMB user is a system
// account (kUser, created on first use and kept: tests running in parallel
// share it; it has no home and no login shell) with a fresh password in this
// instance's own tdbsam passdb, which goes with the temp dir.
#pragma once

#include <memory>
#include <string>

#include "process.h"
#include "temp_dir.h"

namespace rnotify::testbed {

class Samba {
 public:
  static constexpr const char* kUser = "rnotify-smbtest";
  static constexpr const char* kShare = "share";

  // Starts smbd and waits until it accepts TCP; throws with smbd's output if
  // it does not within 15 s.
  Samba();
  ~Samba();
  Samba(const Samba&) = delete;
  Samba& operator=(const Samba&) = delete;

  // "" if smbd, smbpasswd and smbclient are installed and we are root; else why not.
  static std::string missing();

  int port() const { return port_; }
  const std::string& password() const { return password_; }
  // The exported directory, as the server sees it.
  const std::string& exportDir() const { return exportDir_; }
  // exportDir()/rel
  std::string serverPath(const std::string& rel) const { return exportDir_ + "/" + rel; }
  // Runs `smbclient //127.0.0.1/share -p PORT -U user%password -c commands` as
  // a second SMB client; throws with its output unless every command succeeds.
  // Directories made on the server side (as root) are not writable for kUser:
  // make the ones the client writes into through smbclient too.
  std::string smbclient(const std::string& commands) const;
  // Kills smbd and every per-connection child at once (a server crash).
  void kill();
  std::string transcript() const { return process_ ? process_->transcript() : ""; }

 private:
  TempDir dir_{"rnotify-samba-"};
  int port_ = 0;
  std::string password_, exportDir_, config_;
  std::unique_ptr<Process> process_;
};

}  // namespace rnotify::testbed
