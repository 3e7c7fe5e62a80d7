// kiln: compile ONNX models to .kiln artifacts, run and inspect them.
#include <exception>
#include <new>
#include <iostream>
#include <string>
#include <vector>

#include "tools/kiln/commands.h"

namespace kiln::tools {
namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

constexpr Subcommand kSubcommands[] = {
    {"compile", "compile an ONNX model to a .kiln artifact", &compileCommand},
    {"run", "run an artifact on input files or random inputs; check against references",
     &runCommand},
    {"inspect", "print an artifact's IR with its memory plan, inputs, outputs and weight bytes", &inspectCommand},
    {"generate", "greedy decoding of a decoder artifact with its KV cache; tokens per second",
     &generateCommand},
    {"bench", "time an artifact's runs (warmup, then timed runs); one JSON line", &benchCommand},
    {"devices", "list the devices this build has: memory space, availability, properties", &devicesCommand},
    {"calibrate", "measure a device profile (FLOP rates, bandwidth, launch, host link) on this machine",
     &calibrateCommand},
};

std::string usage() {
  std::string text =
      "usage: kiln COMMAND [options]\n\n"
      "kiln compiles transformer models ahead of time and runs the compiled artifacts.\n\n"
      "commands:\n";
  for (const Subcommand& command : kSubcommands) {
    std::string name = std::string("  ") + command.name;
    name.resize(12, ' ');
    text += name + command.summary + "\n";
  }
  text +=
      "\n'kiln COMMAND --help' describes a command's options.\n"
      "Exit codes: 0 success, 1 error (the message is on stderr).\n";
  return text;
}

int dispatch(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << "kiln: no command given\n\n" << usage();
    return 1;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << usage();
    return 0;
  }
  for (const Subcommand& command : kSubcommands)
    if (args[0] == command.name)
      return command.run(std::vector<std::string>(args.begin() + 1, args.end()));
  std::cerr << "kiln: unknown command '" << args[0]
            << "' (commands: compile, run, inspect, generate, bench, devices, calibrate; see 'kiln --help')\n";
  return 1;
}

}  // namespace
}  // namespace kiln::tools

int main(int argc, char** argv) {
  // Errors are values throughout kiln; this is the last resort for a bug
  // (or bad_alloc), so the tool still exits 1 with a message, not a crash.
  try {
    return kiln::tools::dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::bad_alloc&) {
    std::cerr << "kiln: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "kiln: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "kiln: internal error\n";
  }
  return 1;
}
