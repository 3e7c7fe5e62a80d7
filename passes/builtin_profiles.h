// The profiles kiln ships (profiles/*.json), built into the compiler by
// passes/embed_profiles.cmake.
#pragma once

#include <string_view>
#include <vector>

namespace kiln {

struct BuiltinProfile {
  std::string_view name;  // the file's name without .json
  std::string_view json;
};

const std::vector<BuiltinProfile>& builtinProfiles();

}  // namespace kiln
