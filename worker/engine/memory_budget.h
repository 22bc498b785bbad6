// How much memory one rank may use: the host's RAM or, when lower, the memory limit
// of the cgroup this process runs in (a container's, a batch system's), shared
// among the ranks of the job on this host. Every rank loads the whole data set and
// builds its own network, so checking one rank's need against the whole host would
// let N ranks together ask for N times what there is, and the kernel's OOM killer
// (not an error message) would end the pool.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace prelude {

// What the host and the cgroup say, read from /proc and /sys/fs/cgroup.
struct HostMemory {
  uint64_t physical = 0;               // MemTotal (0 if unknown)
  std::optional<uint64_t> available;   // MemAvailable, for messages only: it changes from moment to moment
  std::optional<uint64_t> cgroup;      // the effective cgroup limit, when one is set
  std::string cgroup_file;             // the file that set it (the lowest limit on the way to the root)
};

// Reads the memory facts of this process. `root` prefixes every path (/proc/...,
// the cgroup mounts), so tests can point it at a fixture tree; "" is the live system.
// Both cgroup versions: v2 (memory.max) and v1 (the memory controller's
// memory.limit_in_bytes), found through /proc/self/mountinfo and /proc/self/cgroup;
// the effective limit is the lowest on the way from this process's cgroup up to the
// mount's root ("max" and v1's huge "unlimited" values are no limit). Missing or
// unreadable files mean no limit, never an error.
HostMemory read_host_memory(const std::string& root = "");

// This rank's share of memory.
struct MemoryBudget {
  uint64_t bytes = 0;
  std::string source;  // e.g. "the cgroup limit of 4096 MiB (/sys/fs/cgroup/memory.max) shared by 2 ranks"
  // "2048 MiB (the cgroup limit ... shared by 2 ranks)", for messages.
  std::string describe() const;
};

// min(RAM, cgroup limit) / ranks_on_host. Without any figure the budget is
// unbounded (UINT64_MAX).
MemoryBudget memory_budget(const HostMemory& host, int ranks_on_host);

// The live budget of this process: read_host_memory() shared by ranks_on_host().
MemoryBudget this_rank_memory_budget();

// How many ranks of this job share this host. Communicator::world() sets it from
// MPI_COMM_TYPE_SHARED; until then it comes from the launcher's environment
// (OMPI_COMM_WORLD_LOCAL_SIZE, MPI_LOCALNRANKS), else 1.
int ranks_on_host();
void set_ranks_on_host(int n);

// The memory this process holds now (its resident set, from /proc/self/statm); 0
// if unknown.
uint64_t resident_bytes();

// "512 MiB", or "1.5 GiB" and so on for large sizes (for messages).
std::string format_bytes(uint64_t bytes);

}  // namespace prelude
