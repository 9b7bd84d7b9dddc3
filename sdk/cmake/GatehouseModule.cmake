# gatehouse_add_module(NAME SOURCES ... [LIBRARIES ...] [NO_INSTALL])
# A module is a shared object that sees only the SDK: no kernel symbol, hidden visibility, and
# --no-undefined so a stray dependency fails at link time instead of at load time.
#
# `cmake --install` puts NAME.so in PREFIX/${GATEHOUSE_MODULE_INSTALL_DIR} (lib/gatehouse/modules:
# where a kernel installed with the same prefix looks by default, /usr/lib/gatehouse/modules for
# prefix /usr), as component module-NAME so a packager can ship each module on its own:
#   cmake --install BUILD --component module-NAME
if(NOT DEFINED GATEHOUSE_MODULE_INSTALL_DIR)
  set(GATEHOUSE_MODULE_INSTALL_DIR lib/gatehouse/modules)
endif()

function(gatehouse_add_module name)
  cmake_parse_arguments(ARG "NO_INSTALL" "" "SOURCES;LIBRARIES" ${ARGN})
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
  if(NOT ARG_NO_INSTALL)
    install(TARGETS ${name} LIBRARY DESTINATION ${GATEHOUSE_MODULE_INSTALL_DIR}
      COMPONENT module-${name})
  endif()
endfunction()
