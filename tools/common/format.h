// Number formatting the tools' tables and JSON lines share.
#pragma once

#include <string>

namespace kiln::tools {

// `value` with `decimals` digits after the point ("%.*f").
std::string fixed(double value, int decimals);

}  // namespace kiln::tools
