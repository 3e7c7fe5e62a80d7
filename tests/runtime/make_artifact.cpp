// Test helper: text IR in, .kiln artifact out (parseGraph, compile with no
// passes, so the program is the text's, and writeArtifact), so runtime tests
// get artifacts without the ONNX frontend. Creates the output's directory.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "compiler/artifact_writer.h"
#include "compiler/compiler.h"
#include "ir/text.h"

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
  kiln::CompileOptions noPasses;
  noPasses.pipeline.emplace();
  kiln::Expected<kiln::CompileResult> compiled = kiln::compile(std::move(*graph), noPasses);
  if (!compiled) {
    std::cerr << "kiln_make_artifact: " << argv[1] << ": " << compiled.status().message() << "\n";
    return 1;
  }
  kiln::Status written = kiln::writeArtifact(*compiled, argv[2]);
  if (!written) {
    std::cerr << "kiln_make_artifact: " << written.message() << "\n";
    return 1;
  }
  return 0;
}
