// What a pool declares at registration (RegisterPoolRequest.capabilities): the data
// sets under its data root, each file with its size and SHA-256, and its CPU (the ISA
// oneDNN runs, whether BF16 training can run). The coordinator schedules by it and
// needs no data of its own.
//
// Hashing is done once per file: digests are cached, keyed by the file's absolute
// path, size and modification time, in a file outside the data root (which may be
// read-only), written atomically (a temporary file renamed over it). A cache that does
// not parse is ignored and rebuilt.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "prelude/v1/worker.pb.h"

namespace prelude {

// How a declaration went, for the pool's log.
struct DeclarationStats {
  int files = 0;             // IDX files declared
  int hashed = 0;            // of them, hashed now (not in the cache, or changed)
  int64_t bytes_hashed = 0;  // their bytes
  double seconds = 0;        // the whole declaration: scan, cache, hashing
  std::string cache_note;    // empty, or what went wrong with the cache (ignored, not written)
};

// The lowercase hex SHA-256 of the file's bytes. Throws std::runtime_error naming the
// file when it cannot be read.
std::string sha256_file(const std::string& path);

// Where the digests are cached: $XDG_CACHE_HOME/prelude/data-sha256.tsv, else
// $HOME/.cache/prelude/data-sha256.tsv; empty when neither variable is set (nothing
// is cached then).
std::string default_hash_cache_file();

// The data sets under data_root (spec/data_files.h scan_data_sets), their files with
// sizes and digests, the digests taken from and added to `cache_file` (none when
// empty). A file that cannot be read is left out of its data set.
std::vector<prelude::v1::DataSetDeclaration> declare_data_sets(const std::string& data_root,
                                                               const std::string& cache_file,
                                                               DeclarationStats* stats = nullptr);

// The whole declaration: the data sets and this CPU (engine/context.h's
// effective_isa_name() and cpu_has_bf16(), the check BF16 training makes).
prelude::v1::PoolCapabilities pool_capabilities(const std::string& data_root, const std::string& cache_file,
                                                DeclarationStats* stats = nullptr);

// One line for the log: "declared 1 data set (fashion-mnist: 4 files), CPU avx512_core_bf16, bf16 yes;
// hashed 4 files (29.4 MB) in 0.081 s" or "...; every digest from the cache (0.002 s)".
std::string declaration_summary(const prelude::v1::PoolCapabilities& caps, const DeclarationStats& stats);

}  // namespace prelude
