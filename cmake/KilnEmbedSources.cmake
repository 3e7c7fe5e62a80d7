# kiln_embed_sources(OUT NAMESPACE HEADER FILE...): a build step that embeds
# each kernel source FILE (under the calling folder's kernels/) as a string
# in a generated C++ file (cmake/embed_sources.cmake writes it), declared in
# HEADER in NAMESPACE; sets OUT to that file's path, for the backend's
# library sources. The OpenCL and CUDA backends embed their kernels so.
function(kiln_embed_sources out namespace header)
  set(paths "")
  foreach(file IN LISTS ARGN)
    list(APPEND paths ${CMAKE_CURRENT_SOURCE_DIR}/kernels/${file})
  endforeach()
  list(JOIN paths "," list)  # a ';' list would split on the command line
  set(embedded ${CMAKE_CURRENT_BINARY_DIR}/kernel_sources.cpp)
  add_custom_command(
    OUTPUT ${embedded}
    COMMAND ${CMAKE_COMMAND} -DOUTPUT=${embedded} -DINPUTS=${list} -DNAMESPACE=${namespace}
            -DHEADER=${header} -P ${PROJECT_SOURCE_DIR}/cmake/embed_sources.cmake
    DEPENDS ${paths} ${PROJECT_SOURCE_DIR}/cmake/embed_sources.cmake
    COMMENT "Embedding the kernel sources of ${header}"
    VERBATIM)
  set(${out} ${embedded} PARENT_SCOPE)
endfunction()
