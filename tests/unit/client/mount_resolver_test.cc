// MountResolver against mountinfo text copied from a real machine (Debian 12,
// kernel 6.18) plus sshfs lines observed there and synthetic nfs4/cifs lines.
#include "mounts/mount_resolver.h"

#include <gtest/gtest.h>

namespace rnotify {
namespace {

// From `cat /proc/self/mountinfo` on the development machine; the sshfs lines
// were produced by real sshfs 3.7.3 mounts (one mount point with a space).
// The nfs4 and cifs lines are synthetic, in the kernel's format.
constexpr std::string_view kMountinfo =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n"
    "24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334492k,nr_inodes=3083623,mode=755\n"
    "25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684092k\n"
    "26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534\n"
    "29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000\n"
    "30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684092k\n"
    "43 27 0:39 / /tmp/mr-sshd.MMtw/mnt\\040point rw,nosuid,nodev,relatime - fuse.sshfs "
    "root@127.0.0.1:/tmp/mr-sshd.MMtw/remote rw,user_id=0,group_id=0\n"
    "44 27 0:40 / /tmp/mr-sshd.MMtw/mnt2 rw,nosuid,nodev,relatime - fuse.sshfs 127.0.0.1: "
    "rw,user_id=0,group_id=0\n"
    "120 27 0:52 / /mnt/nas rw,relatime shared:80 master:3 - nfs4 nas.example:/export/home "
    "rw,vers=4.2,rsize=1048576,wsize=1048576,hard,proto=tcp,sec=sys,addr=192.0.2.10\n"
    "130 27 0:60 / /mnt/win\\040share rw,relatime - cifs //fileserver/public\\040docs "
    "rw,vers=3.1.1,cache=strict,username=alice,uid=1000,addr=192.0.2.20\n";

TEST(MountResolverParse, ReadsFieldsAndSkipsOptionalOnes) {
  std::vector<MountInfo> mounts = MountResolver::parse(kMountinfo);
  ASSERT_EQ(mounts.size(), 12u);
  EXPECT_EQ(mounts[5].mountPoint, "/");
  EXPECT_EQ(mounts[5].fsType, "ext4");
  EXPECT_EQ(mounts[5].source, "/dev/vda");
  EXPECT_EQ(mounts[5].mountId, 27);
  EXPECT_EQ(mounts[5].parentId, 1);
  const MountInfo& nfs = mounts[10];
  EXPECT_EQ(nfs.mountPoint, "/mnt/nas");
  EXPECT_EQ(nfs.fsType, "nfs4");
  EXPECT_EQ(nfs.source, "nas.example:/export/home");
  EXPECT_EQ(nfs.root, "/");
  EXPECT_NE(nfs.superOptions.find("vers=4.2"), std::string::npos);
}

TEST(MountResolverParse, UnescapesOctal) {
  std::vector<MountInfo> mounts = MountResolver::parse(kMountinfo);
  EXPECT_EQ(mounts[8].mountPoint, "/tmp/mr-sshd.MMtw/mnt point");
  EXPECT_EQ(mounts[11].mountPoint, "/mnt/win share");
  EXPECT_EQ(mounts[11].source, "//fileserver/public docs");
  EXPECT_EQ(unescapeMountField("a\\011b\\012c\\134d"), "a\tb\nc\\d");
  EXPECT_EQ(unescapeMountField("trailing\\04"), "trailing\\04");  // too short: kept as is
  EXPECT_EQ(unescapeMountField("\\999"), "\\999");
}

TEST(MountResolverParse, SkipsMalformedLines) {
  std::vector<MountInfo> mounts = MountResolver::parse(
      "garbage\n\n"
      "1 2 3 4 5 6 no-dash here\n"
      "x 27 0:1 / /a rw - tmpfs tmpfs rw\n"
      "50 27 0:1 / /ok rw - tmpfs tmpfs\n");
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].mountPoint, "/ok");
  EXPECT_EQ(mounts[0].superOptions, "");
}

TEST(MountResolverResolve, PicksLongestMountPointAndRelativePath) {
  MountResolver resolver(MountResolver::parse(kMountinfo));
  ResolvedPath root = resolver.resolve("/etc/passwd");
  EXPECT_EQ(root.mount.mountPoint, "/");
  EXPECT_EQ(root.kind, MountKind::kLocal);
  EXPECT_EQ(root.relative, "etc/passwd");

  ResolvedPath sshfs = resolver.resolve("/tmp/mr-sshd.MMtw/mnt point/a/b");
  EXPECT_EQ(sshfs.kind, MountKind::kSshfs);
  EXPECT_EQ(sshfs.mount.source, "root@127.0.0.1:/tmp/mr-sshd.MMtw/remote");
  EXPECT_EQ(sshfs.relative, "a/b");

  ResolvedPath top = resolver.resolve("/tmp/mr-sshd.MMtw/mnt point");
  EXPECT_EQ(top.kind, MountKind::kSshfs);
  EXPECT_EQ(top.relative, "");

  // A sibling whose name merely starts with the mount point's is not inside it.
  EXPECT_EQ(resolver.resolve("/tmp/mr-sshd.MMtw/mnt pointless").mount.mountPoint, "/");
  EXPECT_EQ(resolver.resolve("/mnt/nas/docs/x.txt").kind, MountKind::kNfs);
  EXPECT_EQ(resolver.resolve("/mnt/win share/y").kind, MountKind::kSmb);
  EXPECT_EQ(resolver.resolve("/").relative, "");
}

TEST(MountResolverResolve, StackedMountsTopmostWins) {
  // 29 is stacked on 26 at /dev/pts (its parent is 26), as on the real machine.
  MountResolver resolver(MountResolver::parse(kMountinfo));
  EXPECT_EQ(resolver.resolve("/dev/pts/0").mount.mountId, 29);
  EXPECT_EQ(resolver.resolve("/dev/shm").mount.mountId, 30);
}

TEST(MountResolverResolve, MountHiddenByLaterMountOnAncestorIsSkipped) {
  // /srv/data (51) was mounted first, then a tmpfs over /srv (52) hid it.
  MountResolver resolver(
      MountResolver::parse("27 1 254:0 / / rw - ext4 /dev/vda rw\n"
                           "51 27 0:40 / /srv/data rw - nfs4 nas:/data rw\n"
                           "52 27 0:41 / /srv rw - tmpfs tmpfs rw\n"));
  ResolvedPath path = resolver.resolve("/srv/data/file");
  EXPECT_EQ(path.mount.mountId, 52);
  EXPECT_EQ(path.kind, MountKind::kLocal);
  EXPECT_EQ(path.relative, "data/file");
}

TEST(MountResolverResolve, WithoutMountIdsFallsBackToLongestPrefix) {
  std::vector<MountInfo> mounts(3);
  mounts[0].mountPoint = "/";
  mounts[0].fsType = "ext4";
  mounts[1].mountPoint = "/mnt/nas";
  mounts[1].fsType = "nfs";
  mounts[2].mountPoint = "/mnt/nas";
  mounts[2].fsType = "fuse.sshfs";  // stacked later on the same point: wins
  MountResolver resolver(mounts);
  ResolvedPath path = resolver.resolve("/mnt/nas/x/");
  EXPECT_EQ(path.kind, MountKind::kSshfs);
  EXPECT_EQ(path.relative, "x");
}

TEST(MountResolverResolve, EmptyTableIsLocal) {
  MountResolver resolver({});
  ResolvedPath path = resolver.resolve("/a/b");
  EXPECT_EQ(path.kind, MountKind::kLocal);
  EXPECT_EQ(path.relative, "a/b");
}

TEST(MountResolverResolve, FromProcResolvesRoot) {
  MountResolver resolver = MountResolver::fromProc();
  ASSERT_FALSE(resolver.mounts().empty());
  EXPECT_EQ(resolver.resolve("/proc/self").mount.fsType, "proc");
}

TEST(Classify, KnownTypes) {
  EXPECT_EQ(classify("fuse.sshfs"), MountKind::kSshfs);
  EXPECT_EQ(classify("nfs"), MountKind::kNfs);
  EXPECT_EQ(classify("nfs4"), MountKind::kNfs);
  EXPECT_EQ(classify("cifs"), MountKind::kSmb);
  EXPECT_EQ(classify("smb3"), MountKind::kSmb);
  for (const char* type : {"fuse.rclone", "fuse.glusterfs", "ceph", "9p", "virtiofs", "afs", "fuse"}) {
    EXPECT_EQ(classify(type), MountKind::kOtherNetwork) << type;
  }
  for (const char* type :
       {"ext4", "xfs", "btrfs", "tmpfs", "overlay", "proc", "fuseblk", "fuse.lxcfs", "fuse.rnotify"}) {
    EXPECT_EQ(classify(type), MountKind::kLocal) << type;
  }
}

}  // namespace
}  // namespace rnotify
