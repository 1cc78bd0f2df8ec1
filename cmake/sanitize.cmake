# DRIFTSCOPE_SANITIZE=address,undefined (any comma list of clang/GCC
# sanitizer names) instruments everything built in this tree. The first
# report ends the process (-fno-sanitize-recover=all), so a UBSan finding
# fails a test instead of scrolling past in its log.
#
# DRIFTSCOPE_FUZZ=ON (clang only) adds libFuzzer's coverage instrumentation
# to every library and builds the targets under fuzz/; the fuzz targets link
# libFuzzer's main, the tests in the same tree do not.
if(DRIFTSCOPE_SANITIZE)
  string(REPLACE "," ";" _sanitizers "${DRIFTSCOPE_SANITIZE}")
  foreach(s IN LISTS _sanitizers)
    add_compile_options(-fsanitize=${s})
    add_link_options(-fsanitize=${s})
  endforeach()
  add_compile_options(-fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fno-sanitize-recover=all)
endif()

if(DRIFTSCOPE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "DRIFTSCOPE_FUZZ needs clang (libFuzzer): configure with "
      "-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>)
endif()
