#include "tools/common/arguments.h"

#include <algorithm>
#include <charconv>
#include <iostream>

namespace kiln::tools {

ArgumentParser::ArgumentParser(std::string usage, std::string description)
    : usage_(std::move(usage)), description_(std::move(description)) {}

void ArgumentParser::positional(std::string metavar, std::string help, std::string* out) {
  positionals_.push_back({std::move(metavar), std::move(help), out});
}

void ArgumentParser::flag(std::string name, std::string help, bool* out) {
  Spec spec{Spec::Kind::Flag, std::move(name), "", std::move(help), {}};
  spec.flag = out;
  specs_.push_back(std::move(spec));
}

void ArgumentParser::option(std::string name, std::string metavar, std::string help,
                            std::string* out, std::vector<std::string> aliases) {
  Spec spec{Spec::Kind::Option, std::move(name), std::move(metavar), std::move(help),
            std::move(aliases)};
  spec.value = out;
  specs_.push_back(std::move(spec));
}

void ArgumentParser::option(std::string name, std::string metavar, std::string help,
                            std::optional<std::string>* out) {
  Spec spec{Spec::Kind::Option, std::move(name), std::move(metavar), std::move(help), {}};
  spec.optionalValue = out;
  specs_.push_back(std::move(spec));
}

void ArgumentParser::repeated(std::string name, std::string metavar, std::string help,
                              std::vector<std::string>* out) {
  Spec spec{Spec::Kind::Repeated, std::move(name), std::move(metavar), std::move(help), {}};
  spec.values = out;
  specs_.push_back(std::move(spec));
}

const ArgumentParser::Spec* ArgumentParser::findSpec(const std::string& name) const {
  for (const Spec& spec : specs_)
    if (spec.name == name ||
        std::find(spec.aliases.begin(), spec.aliases.end(), name) != spec.aliases.end())
      return &spec;
  return nullptr;
}

Status ArgumentParser::parse(const std::vector<std::string>& args) {
  size_t nextPositional = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      helpRequested_ = true;
      return Status::ok();
    }
    // "-" alone is a positional (stdin), as is anything not starting with '-'.
    if (arg.size() < 2 || arg[0] != '-') {
      if (nextPositional == positionals_.size())
        return Status::error("unexpected argument '", arg, "'");
      *positionals_[nextPositional++].out = arg;
      continue;
    }
    size_t equals = arg.find('=');
    std::string name = arg.substr(0, equals);
    const Spec* spec = findSpec(name);
    if (!spec) return Status::error("unknown option '", name, "'");
    if (spec->kind == Spec::Kind::Flag) {
      if (equals != std::string::npos)
        return Status::error("option '", name, "' takes no value");
      *spec->flag = true;
      continue;
    }
    std::string value;
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else {
      if (i + 1 == args.size())
        return Status::error("option '", name, "' needs a value (", spec->metavar, ")");
      value = args[++i];
    }
    if (spec->kind == Spec::Kind::Repeated) spec->values->push_back(value);
    else if (spec->optionalValue) *spec->optionalValue = value;
    else *spec->value = value;
  }
  if (nextPositional < positionals_.size())
    return Status::error("missing ", positionals_[nextPositional].metavar);
  return Status::ok();
}

std::string ArgumentParser::help() const {
  std::string text = "usage: " + usage_ + "\n\n" + description_ + "\n";
  auto line = [&](std::string left, const std::string& help) {
    left = "  " + left;
    if (left.size() < 28) left.resize(28, ' ');
    else left += "\n" + std::string(28, ' ');
    // Continuation lines of a multi-line help align under its first line.
    for (char c : help) {
      left += c;
      if (c == '\n') left += std::string(28, ' ');
    }
    text += left + "\n";
  };
  if (!positionals_.empty()) {
    text += "\narguments:\n";
    for (const Positional& p : positionals_) line(p.metavar, p.help);
  }
  text += "\noptions:\n";
  for (const Spec& spec : specs_) {
    std::string left;
    for (const std::string& alias : spec.aliases) left += alias + ", ";
    left += spec.name;
    if (spec.kind != Spec::Kind::Flag) left += " " + spec.metavar;
    line(left, spec.help);
  }
  line("-h, --help", "show this help and exit");
  return text;
}

std::optional<int> ArgumentParser::parseOrExitCode(const std::vector<std::string>& args,
                                                   const std::string& tool, const std::string& extraHelp) {
  if (Status parsed = parse(args); !parsed) {
    std::cerr << tool << ": " << parsed.message() << "\n(run '" << tool << " --help' for usage)\n";
    return 1;
  }
  if (helpRequested_) {
    std::cout << help() << extraHelp;
    return 0;
  }
  return std::nullopt;
}

Expected<int64_t> parseCount(std::string_view option, const std::string& text, int64_t least) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < least)
    return Status::error(option, " '", text, "' is not an integer >= ", least);
  return value;
}

}  // namespace kiln::tools
