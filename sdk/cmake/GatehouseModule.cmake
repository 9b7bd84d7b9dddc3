# gatehouse_add_module(NAME SOURCES ... [LIBRARIES ...])
# A module is a shared object that sees only the SDK: no kernel symbol, hidden visibility, and
# --no-undefined so a stray dependency fails at link time instead of at load time.
function(gatehouse_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE gatehouse::sdk ${ARG_LIBRARIES})
  if(NOT GATEHOUSE_MODULE_OUTPUT_DIR)
    set(GATEHOUSE_MODULE_OUTPUT_DIR ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${name}
    LIBRARY_OUTPUT_DIRECTORY ${GATEHOUSE_MODULE_OUTPUT_DIR}
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Hidden visibility does not cover everything: libstdc++ declares namespace std with default
  # visibility, so template statics such as std::to_string's digit table become exported
  # STB_GNU_UNIQUE symbols that the dynamic linker would merge with the kernel's and other
  # modules' copies. A version script makes the entry symbol the only export, whatever the code.
  set(map ${CMAKE_CURRENT_BINARY_DIR}/${name}.exports.map)
  file(CONFIGURE OUTPUT ${map} CONTENT "{\n  global: gatehouse_module_v1;\n  local: *;\n};\n")
  target_link_options(${name} PRIVATE -Wl,--no-undefined -Wl,--exclude-libs,ALL
    -Wl,--version-script=${map})
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${map})
  target_compile_options(${name} PRIVATE -Wall -Wextra)
endfunction()
