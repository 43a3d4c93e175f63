// The view's FUSE handlers: libfuse's low-level API, passing every operation
// through to SOURCE (the network mount) the way libfuse's passthrough_hp does:
// one handler per operation, each short, errors returned at once with
// fuse_reply_err(req, errno).
//
// The exception is the daemon's own requests (ReflectionGate::isOwn): those are
// the reflector replaying a change that already happened on the server, so
// their handlers change nothing on SOURCE and only report what is there.
#pragma once

#include <fuse_lowlevel.h>

#include "fuse/inode_table.h"
#include "fuse/reflection_gate.h"

namespace rnotify::fuse {

// Everything the handlers share; fuse_req_userdata(req) points to it.
struct View {
  InodeTable* table = nullptr;
  ReflectionGate* gate = nullptr;
  double timeout = 1.0;  // entry/attribute validity given to the kernel, seconds
};

// Handlers for entries and attributes (passthrough_entries.cc) and for file
// and directory contents (passthrough_data.cc).
void addEntryOperations(fuse_lowlevel_ops* ops);
void addDataOperations(fuse_lowlevel_ops* ops);

inline fuse_lowlevel_ops passthroughOperations() {
  fuse_lowlevel_ops ops{};
  addEntryOperations(&ops);
  addDataOperations(&ops);
  return ops;
}

}  // namespace rnotify::fuse
