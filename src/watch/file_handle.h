// File handles as fanotify reports them: the filesystem's fsid followed by a
// struct file_handle (handle_bytes, handle_type, f_handle). Used as the key
// of a directory or file in FanotifyWatcher, and turned back into a path with
// open_by_handle_at (needs CAP_DAC_READ_SEARCH).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"

namespace rnotify {

inline constexpr size_t kFsidSize = 8;
inline constexpr size_t kFileHandleHeaderSize = 8;  // struct file_handle: handle_bytes, handle_type

// The key fanotify reports for the object open on fd (may be O_PATH).
Result<std::string> handleKeyOf(int fd, const std::array<char, kFsidSize>& fsid, int* mountId);

// The absolute path of the object a key names, resolved through a descriptor
// on its mount (not O_PATH). Returns 0, or an errno: ESTALE or ENOENT when the
// object is gone (a removed directory still held open counts as gone).
int pathOfHandle(int mountFd, std::string_view key, std::string* path);

// The object a key names, opened O_PATH through a descriptor on its mount
// (not O_PATH); invalid with errno set when it cannot be.
UniqueFd openHandle(int mountFd, std::string_view key);

// The path of the root of the mount that the directory open on dirFd is on,
// as this process sees it; "" if unknown. Walks up with O_PATH: no events.
std::string mountRootOf(int dirFd);
// An O_PATH descriptor of the root of the mount (mountId) that holds dirFd,
// found by walking ".." while it stays on that mount; invalid on failure.
UniqueFd openMountRootPath(int dirFd, int mountId);

// The mount id (as in /proc/self/mountinfo) of the object open on fd; -1 if
// its filesystem cannot encode handles.
int mountIdOf(int fd);

// The path of an open descriptor as this process sees it; "" if it has none.
std::string pathOfFd(int fd);

}  // namespace rnotify
