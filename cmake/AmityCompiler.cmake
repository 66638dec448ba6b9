# Warnings and sanitizers for every amity target.
set(AMITY_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wcast-qual -Wno-unused-parameter)
if(AMITY_WERROR)
    list(APPEND AMITY_WARNINGS -Werror)
endif()
add_compile_options(${AMITY_WARNINGS})

if(AMITY_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                        -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined)
endif()
