// prelude-worker's commands on trained models (checkpoint files):
//   export CKPT --format onnx|prelude -o FILE
//   eval CKPT [--data-root D] [--dataset NAME] [--threads N]
//   predict CKPT --images IDX [--top K] [--limit N] [--threads N]
#pragma once

namespace prelude {

// argv holds the arguments after the command's name. Exit codes: 0 ok, 2 bad input.
int export_main(int argc, char** argv);
int eval_main(int argc, char** argv);
int predict_main(int argc, char** argv);

}  // namespace prelude
