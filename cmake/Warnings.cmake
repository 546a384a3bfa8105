# SPDX-License-Identifier: Apache-2.0
# The warning set of STYLE.md 13, for gcc and clang alike. Third-party headers
# (BoringSSL, cJSON, cmocka) come in as SYSTEM includes so they stay quiet.
set(DUET_WARNINGS
    -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
    -Wpointer-arith -Wvla -Wundef -Wwrite-strings -Wcast-align
    -Wimplicit-fallthrough -Wno-unused-parameter)
if(DUET_WERROR)
    list(APPEND DUET_WARNINGS -Werror)
endif()
add_compile_options(${DUET_WARNINGS})
add_compile_options(-fno-strict-aliasing -fstack-protector-strong)
if(NOT DUET_ASAN)
    add_compile_definitions($<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
endif()
