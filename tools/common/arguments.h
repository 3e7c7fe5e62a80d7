// A small command-line parser shared by the kiln tools: positionals, flags,
// options with a value (`--atol 1e-3` or `--atol=1e-3`) and repeatable
// options. Anything else is a user error, reported with the usage line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"

namespace kiln::tools {

class ArgumentParser {
 public:
  // `usage` is the synopsis line, e.g. "kiln run ARTIFACT [options]".
  ArgumentParser(std::string usage, std::string description);

  void positional(std::string metavar, std::string help, std::string* out);
  void flag(std::string name, std::string help, bool* out);
  // `aliases` are other spellings (e.g. "-o").
  void option(std::string name, std::string metavar, std::string help, std::string* out,
              std::vector<std::string> aliases = {});
  // An option whose absence differs from an empty value (`--passes=`).
  void option(std::string name, std::string metavar, std::string help,
              std::optional<std::string>* out);
  void repeated(std::string name, std::string metavar, std::string help,
                std::vector<std::string>* out);

  // Fills the bound variables; every positional is required. `--help`/`-h`
  // anywhere sets helpRequested() and stops parsing successfully.
  Status parse(const std::vector<std::string>& args);
  bool helpRequested() const { return helpRequested_; }
  std::string help() const;  // usage, description and one line per argument

  // The prologue every tool shares: parse, then on an error print it with
  // "(run 'TOOL --help' for usage)" to stderr and give exit code 1; on
  // --help print help() and `extraHelp` to stdout and give 0; otherwise
  // nullopt, and the tool goes on. `tool` is e.g. "kiln run".
  std::optional<int> parseOrExitCode(const std::vector<std::string>& args, const std::string& tool,
                                     const std::string& extraHelp = "");

 private:
  struct Spec {
    enum class Kind { Flag, Option, Repeated } kind;
    std::string name, metavar, help;
    std::vector<std::string> aliases;
    bool* flag = nullptr;
    std::string* value = nullptr;
    std::optional<std::string>* optionalValue = nullptr;
    std::vector<std::string>* values = nullptr;
  };
  struct Positional {
    std::string metavar, help;
    std::string* out;
  };
  const Spec* findSpec(const std::string& name) const;

  std::string usage_, description_;
  std::vector<Spec> specs_;
  std::vector<Positional> positionals_;
  bool helpRequested_ = false;
};

// An integer option's value, at least `least`; the error names the option.
Expected<int64_t> parseCount(std::string_view option, const std::string& text, int64_t least);

}  // namespace kiln::tools
