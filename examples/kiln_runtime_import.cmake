# For an example built on its own (outside the kiln tree): the kiln_runtime
# target as an imported libkiln_runtime with kiln's public header. Set
# KILN_ROOT to a kiln checkout and KILN_LIBRARY_DIR to its build's runtime/.
if(NOT TARGET kiln_runtime)
  set(KILN_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." CACHE PATH "kiln source tree (for include/kiln/kiln.h)")
  set(KILN_LIBRARY_DIR "${KILN_ROOT}/build/runtime" CACHE PATH "directory holding libkiln_runtime.so")
  find_library(KILN_RUNTIME_LIBRARY kiln_runtime PATHS ${KILN_LIBRARY_DIR} REQUIRED NO_DEFAULT_PATH)
  add_library(kiln_runtime SHARED IMPORTED)
  set_target_properties(kiln_runtime PROPERTIES
    IMPORTED_LOCATION ${KILN_RUNTIME_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${KILN_ROOT}/include)
endif()
