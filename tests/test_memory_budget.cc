// The memory budget of a rank: cgroup v1 and v2 limits found through fixture copies
// of /proc/self/mountinfo, /proc/self/cgroup and the cgroup files (not the live
// machine), the lowest limit on the way up winning, RAM winning over a higher
// limit, and the share of each rank on the host.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "engine/memory_budget.h"
#include "idx_fixtures.h"

using namespace prelude;
using testutil::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kGiB = uint64_t(1) << 30, kMiB = 1 << 20;

void put(const TempDir& root, const std::string& path, const std::string& text) {
  const fs::path p = root / path.substr(1);
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A /proc/meminfo of 8 GiB with 6 GiB available.
void meminfo(const TempDir& root) {
  put(root, "/proc/meminfo",
      "MemTotal:        8388608 kB\nMemFree:         1000000 kB\nMemAvailable:    6291456 kB\nBuffers: 0 kB\n");
}

// This machine's layout: cgroup v1 controllers under /sys/fs/cgroup/<name>, a v2
// hierarchy without the memory controller at /sys/fs/cgroup/unified.
const char* kHybridMountinfo =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

const char* kV2Mountinfo =
    "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
    "35 22 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";

}  // namespace

TEST(MemoryBudget, CgroupV2TakesTheLowestLimitOnTheWayUp) {
  TempDir root;
  meminfo(root);
  put(root, "/proc/self/mountinfo", kV2Mountinfo);
  put(root, "/proc/self/cgroup", "0::/user.slice/job-7\n");
  put(root, "/sys/fs/cgroup/memory.max", "max\n");
  put(root, "/sys/fs/cgroup/user.slice/memory.max", "2147483648\n");
  put(root, "/sys/fs/cgroup/user.slice/job-7/memory.max", "max\n");
  const HostMemory h = read_host_memory(root.path());
  EXPECT_EQ(h.physical, 8 * kGiB);
  ASSERT_TRUE(h.available);
  EXPECT_EQ(*h.available, 6 * kGiB);
  ASSERT_TRUE(h.cgroup);
  EXPECT_EQ(*h.cgroup, 2 * kGiB);
  EXPECT_EQ(h.cgroup_file, root / "sys/fs/cgroup/user.slice/memory.max");

  // A lower limit deeper down wins.
  put(root, "/sys/fs/cgroup/user.slice/job-7/memory.max", "1073741824\n");
  EXPECT_EQ(read_host_memory(root.path()).cgroup.value_or(0), kGiB);

  // Shared by the ranks on the host.
  const MemoryBudget b = memory_budget(read_host_memory(root.path()), 4);
  EXPECT_EQ(b.bytes, kGiB / 4);
  EXPECT_NE(b.source.find("the cgroup limit of 1024 MiB"), std::string::npos) << b.source;
  EXPECT_NE(b.source.find("job-7/memory.max"), std::string::npos) << b.source;
  EXPECT_NE(b.source.find("shared by 4 ranks"), std::string::npos) << b.source;
  EXPECT_NE(b.describe().find("256 MiB ("), std::string::npos) << b.describe();
}

TEST(MemoryBudget, CgroupV1MemoryControllerAndItsUnlimitedValue) {
  TempDir root;
  meminfo(root);
  put(root, "/proc/self/mountinfo", kHybridMountinfo);
  put(root, "/proc/self/cgroup",
      "9:name=systemd:/\n4:memory:/process_api/30e8\n1:cpu:/\n0::/\n");
  // v1 writes PAGE_COUNTER_MAX pages for "no limit".
  put(root, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  put(root, "/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", "9223372036854771712\n");
  put(root, "/sys/fs/cgroup/memory/process_api/30e8/memory.limit_in_bytes", "9223372036854771712\n");
  put(root, "/sys/fs/cgroup/unified/cgroup.procs", "");
  HostMemory h = read_host_memory(root.path());
  EXPECT_FALSE(h.cgroup) << *h.cgroup;
  MemoryBudget b = memory_budget(h, 2);
  EXPECT_EQ(b.bytes, 4 * kGiB);
  EXPECT_NE(b.source.find("this host's 8192 MiB of RAM shared by 2 ranks"), std::string::npos) << b.source;
  EXPECT_NE(b.source.find("6144 MiB available now"), std::string::npos) << b.source;

  put(root, "/sys/fs/cgroup/memory/process_api/30e8/memory.limit_in_bytes", "536870912\n");
  h = read_host_memory(root.path());
  ASSERT_TRUE(h.cgroup);
  EXPECT_EQ(*h.cgroup, 512 * kMiB);
  EXPECT_EQ(h.cgroup_file, root / "sys/fs/cgroup/memory/process_api/30e8/memory.limit_in_bytes");
  EXPECT_EQ(memory_budget(h, 2).bytes, 256 * kMiB);
}

TEST(MemoryBudget, ContainerWithoutCgroupNamespaceReadsItsMountRoot) {
  // The container sees its host's path for its group, and that group mounted at
  // /sys/fs/cgroup: the limit is at the mount point itself.
  TempDir root;
  meminfo(root);
  put(root, "/proc/self/mountinfo",
      "500 400 0:30 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n");
  put(root, "/proc/self/cgroup", "0::/docker/abc\n");
  put(root, "/sys/fs/cgroup/memory.max", "3221225472\n");
  EXPECT_EQ(read_host_memory(root.path()).cgroup.value_or(0), 3 * kGiB);

  // A path that is not there under the mount (another namespace's): the mount point.
  put(root, "/proc/self/cgroup", "0::/somewhere/else\n");
  put(root, "/proc/self/mountinfo", kV2Mountinfo);
  EXPECT_EQ(read_host_memory(root.path()).cgroup.value_or(0), 3 * kGiB);
}

TEST(MemoryBudget, RamWinsOverAHigherLimitAndNothingKnownIsUnbounded) {
  TempDir root;
  meminfo(root);
  put(root, "/proc/self/mountinfo", kV2Mountinfo);
  put(root, "/proc/self/cgroup", "0::/\n");
  put(root, "/sys/fs/cgroup/memory.max", "17179869184\n");  // 16 GiB, more than the 8 GiB of RAM
  const MemoryBudget b = memory_budget(read_host_memory(root.path()), 1);
  EXPECT_EQ(b.bytes, 8 * kGiB);
  EXPECT_NE(b.source.find("this host's 8192 MiB of RAM"), std::string::npos) << b.source;
  EXPECT_EQ(b.source.find("shared by"), std::string::npos) << b.source;

  // Garbage and missing files are no limit, not an error.
  put(root, "/sys/fs/cgroup/memory.max", "lots\n");
  EXPECT_FALSE(read_host_memory(root.path()).cgroup);
  TempDir empty;
  const HostMemory none = read_host_memory(empty.path());
  EXPECT_EQ(none.physical, 0u);
  EXPECT_FALSE(none.cgroup);
  EXPECT_EQ(memory_budget(none, 3).bytes, UINT64_MAX);
}

TEST(MemoryBudget, LiveMachineGivesAFigureNoLargerThanItsRam) {
  const HostMemory h = read_host_memory();
  ASSERT_GT(h.physical, 0u);
  const MemoryBudget b = memory_budget(h, 2);
  EXPECT_LE(b.bytes, h.physical / 2);
  EXPECT_GT(b.bytes, 0u);
  EXPECT_GT(resident_bytes(), 0u);
}

TEST(MemoryBudget, RanksOnHostFromTheLauncherUntilMpiSaysSo) {
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  unsetenv("MPI_LOCALNRANKS");
  EXPECT_EQ(ranks_on_host(), 1);
  setenv("MPI_LOCALNRANKS", "3", 1);
  EXPECT_EQ(ranks_on_host(), 3);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
  EXPECT_EQ(ranks_on_host(), 4);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "nonsense", 1);
  EXPECT_EQ(ranks_on_host(), 3);
  set_ranks_on_host(6);
  EXPECT_EQ(ranks_on_host(), 6);
}

TEST(MemoryBudget, FormatsBytes) {
  EXPECT_EQ(format_bytes(512), "512 bytes");
  EXPECT_EQ(format_bytes(300 * kMiB), "300 MiB");
  EXPECT_EQ(format_bytes(24 * kGiB), "24.0 GiB");
}
