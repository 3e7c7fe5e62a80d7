#include "tools/common/format.h"

#include <cstdio>

namespace kiln::tools {

std::string fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

}  // namespace kiln::tools
