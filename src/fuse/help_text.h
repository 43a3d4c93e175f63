// The text of `rnotify-fuse --help`: a short manual page.
#pragma once

#include <string>

namespace rnotify::fuse {

std::string helpDescription();
std::string helpFooter();

}  // namespace rnotify::fuse
