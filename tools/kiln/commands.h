// The subcommands of `kiln`. Each takes the arguments after its name and
// returns the process exit code: 0 success, 1 a user error (already reported
// on stderr).
#pragma once

#include <string>
#include <vector>

namespace kiln::tools {

int compileCommand(const std::vector<std::string>& args);
int runCommand(const std::vector<std::string>& args);
int inspectCommand(const std::vector<std::string>& args);
int generateCommand(const std::vector<std::string>& args);
int benchCommand(const std::vector<std::string>& args);
int devicesCommand(const std::vector<std::string>& args);
int calibrateCommand(const std::vector<std::string>& args);

}  // namespace kiln::tools
