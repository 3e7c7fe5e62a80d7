// Every pass kiln has, looked up by name.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "passes/pass.h"

namespace kiln {

// One fresh instance of each pass, in registry order.
std::vector<std::unique_ptr<Pass>> createAllPasses();
// The pass with this name, or an error that lists the known names.
Expected<std::unique_ptr<Pass>> createPass(std::string_view name);

}  // namespace kiln
