# Writes OUTPUT, a C++ file holding each JSON profile of PROFILE_DIR as a
# string, so the compiler carries its shipped profiles (no file to find at
# run time). Run by passes/CMakeLists.txt whenever a profile changes.
file(GLOB profiles "${PROFILE_DIR}/*.json")
list(SORT profiles)
set(body "// Generated from profiles/*.json by passes/embed_profiles.cmake.\n")
string(APPEND body "#include \"passes/builtin_profiles.h\"\n\nnamespace kiln {\n\n")
string(APPEND body "const std::vector<BuiltinProfile>& builtinProfiles() {\n")
string(APPEND body "  static const std::vector<BuiltinProfile> profiles = {\n")
foreach(profile ${profiles})
  get_filename_component(name "${profile}" NAME_WE)
  file(READ "${profile}" json)
  string(APPEND body "      {\"${name}\", R\"kiln_json(${json})kiln_json\"},\n")
endforeach()
string(APPEND body "  };\n  return profiles;\n}\n\n}  // namespace kiln\n")
file(WRITE "${OUTPUT}.tmp" "${body}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
