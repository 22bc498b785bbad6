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

// The names of a data set's classes in label order: Fashion-MNIST's ten ("T-shirt/top",
// "Trouser", ...), MNIST's digits; for other data sets "class 0", "class 1", ...
std::vector<std::string> class_names(const prelude::v1::DatasetSpec& spec, int num_classes);

}  // namespace prelude
