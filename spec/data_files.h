// Which files a job's data set is: a DatasetSpec resolved against the data root.
// No oneDNN here: the coordinator checks data files at submit with it.
#pragma once

#include <string>
#include <vector>

#include "prelude/v1/job.pb.h"

namespace prelude {

struct DataFiles {
  std::string train_images, train_labels, test_images, test_labels;  // empty: not used
  double mean = 0, std = 1;
};

// Resolves a (defaulted) DatasetSpec against the data root: a named data set's
// standard file names under <root>/<name>/ (the .gz name, or the same name without
// .gz), each replaced by an explicit path when one is given. Paths must stay inside
// the root after resolving links; files must exist (test files only when
// `need_test`). Errors are UserErrors naming the field (dataset.trainImages, ...).
DataFiles resolve_data_files(const prelude::v1::DatasetSpec& spec, const std::string& data_root,
                             bool need_test = true);

// A data set under a data root: a directory <root>/<name> holding IDX files.
struct DataSetFiles {
  std::string name;
  std::vector<std::string> files;  // relative to the root ("fashion-mnist/train-images-idx3-ubyte.gz"), sorted
};
constexpr char kTopLevelDataSet[] = ".";

// The data sets under the root: each directory (a link to one too) holding IDX files
// (gzip or raw, told by their magic number, not their names), with every file in it
// and its subdirectories (four levels at most; hidden ones left out), so that a job
// naming any of them by path finds it declared, a damaged one included (the job then
// fails on the pool saying what is wrong with it, as it always did). Files directly
// under the root (jobs may name them by path) are the data set ".". Sorted by name; an
// unreadable root or directory gives nothing.
std::vector<DataSetFiles> scan_data_sets(const std::string& data_root);

// The files a job reads, relative to the data root, as a pool's declared files are
// matched against them: one entry per file, each with the names it may have (a named
// data set's standard file: the .gz name, then the raw one; an explicit path: that).
// An absolute or escaping explicit path is kept as given: it matches no declared file.
struct NeededFile {
  std::string field;                    // "dataset.trainImages"
  std::vector<std::string> candidates;  // in the order resolve_data_files prefers them
};
std::vector<NeededFile> needed_data_files(const prelude::v1::DatasetSpec& spec, bool need_test = true);

// What a job's data set is called in messages: its name, or its training images' path.
std::string data_set_label(const prelude::v1::DatasetSpec& spec);

// The names of a data set's classes in label order: Fashion-MNIST's ten ("T-shirt/top",
// "Trouser", ...), MNIST's digits; for other data sets "class 0", "class 1", ...
std::vector<std::string> class_names(const prelude::v1::DatasetSpec& spec, int num_classes);

}  // namespace prelude
