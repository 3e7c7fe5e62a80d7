// `kiln compile --calibration-dir DIR`: the statistics latent_attention's
// compressing modes take from data (docs/latent-attention.md). Each
// subdirectory of DIR is one data set (input_K.pb in graph input order); the
// graph as the pass sees it runs on each, on the CPU, and the moments of
// every value the pass asks for (each layer's input x) are accumulated over
// all their tokens, in double.
#pragma once

#include <string>

#include "passes/latent_attention.h"

namespace kiln::tools {

// An error names the directory at fault (none, or one with no data set).
Expected<Calibrate> calibrationFromDir(const std::string& dir);

}  // namespace kiln::tools
