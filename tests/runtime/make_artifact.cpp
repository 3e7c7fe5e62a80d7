// Test helper: text IR in, .kiln artifact out (parseGraph + writeArtifact),
// so runtime tests get artifacts without the ONNX frontend. Creates the
// output's directory.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "ir/text.h"
#include "runtime/artifact.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: kiln_make_artifact IN.kir OUT.kiln\n";
    return 1;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "kiln_make_artifact: cannot read '" << argv[1] << "'\n";
    return 1;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto graph = kiln::parseGraph(text.str());
  if (!graph) {
    std::cerr << "kiln_make_artifact: " << argv[1] << ": " << graph.status().message() << "\n";
    return 1;
  }
  std::filesystem::path out(argv[2]);
  std::error_code ignored;
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path(), ignored);
  kiln::Status written = kiln::rt::writeArtifact(*graph, argv[2]);
  if (!written) {
    std::cerr << "kiln_make_artifact: " << written.message() << "\n";
    return 1;
  }
  return 0;
}
