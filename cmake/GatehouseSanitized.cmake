# Sanitized copies of the modules' and the SDK wrapper's unit tests: the same sources built
# again with AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, run by ctest next
# to the plain ones (their names start with "asan."), so a use after free or a leak fails the
# suite rather than passing by luck in the optimised build. Modules run their own threads and
# are written by third parties against the same SDK; their tests compile a few sources each, so
# the copies cost about a minute of cold build. Of the kernel, only the HTTP parser and its tests
# (the code that reads untrusted bytes; tests/unit/CMakeLists.txt): the kernel's unit tests link
# the whole kernel, and a sanitized copy of it took 7.5 minutes to build on 2 cores. For all of
# the kernel, build a whole tree with CXXFLAGS=-fsanitize=address and run the tests there (the
# top README says how).
#
#   gatehouse_sanitized_tests(TARGET)
#     TARGET_asan: a GoogleTest executable built from TARGET's sources, include directories,
#     definitions, options and links, then gatehouse_sanitize()d.
#   gatehouse_sanitize(TARGET)
#     Adds the sanitizer flags to a GoogleTest executable and registers its tests as asan.<test>.
#
# Off with -DGATEHOUSE_SANITIZED_TESTS=OFF, and by itself when the build as a whole already
# uses a sanitizer (CMAKE_CXX_FLAGS with -fsanitize).

include(GoogleTest)

option(GATEHOUSE_SANITIZED_TESTS "Also run the unit tests under ASan and UBSan" ON)
if(CMAKE_CXX_FLAGS MATCHES "-fsanitize")
  set(GATEHOUSE_SANITIZED_TESTS OFF)
endif()

set(GATEHOUSE_SANITIZER_FLAGS
  -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)

function(gatehouse_sanitized_tests target)
  if(NOT GATEHOUSE_SANITIZED_TESTS)
    return()
  endif()
  set(copy ${target}_asan)
  get_target_property(dir ${target} SOURCE_DIR)
  get_target_property(sources ${target} SOURCES)
  list(TRANSFORM sources PREPEND "${dir}/" REGEX "^[^/]")
  add_executable(${copy} ${sources})
  foreach(property IN ITEMS INCLUDE_DIRECTORIES COMPILE_DEFINITIONS COMPILE_OPTIONS
                            COMPILE_FEATURES CXX_STANDARD LINK_LIBRARIES)
    get_target_property(value ${target} ${property})
    if(value)
      set_property(TARGET ${copy} PROPERTY ${property} "${value}")
    endif()
  endforeach()
  gatehouse_sanitize(${copy})
endfunction()

function(gatehouse_sanitize target)
  # -Wmaybe-uninitialized: false positives in Boost's headers under the sanitizers.
  target_compile_options(${target} PRIVATE ${GATEHOUSE_SANITIZER_FLAGS} -Wno-maybe-uninitialized)
  target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  # Leaks are errors; UBSan reports stop the test (-fno-sanitize-recover) with its stack.
  gtest_discover_tests(${target} TEST_PREFIX "asan." DISCOVERY_TIMEOUT 60
    PROPERTIES ENVIRONMENT
    "ASAN_OPTIONS=detect_leaks=1:halt_on_error=1;UBSAN_OPTIONS=print_stacktrace=1")
endfunction()
