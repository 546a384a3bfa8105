# SPDX-License-Identifier: Apache-2.0
# Debian's android-libboringssl-dev: headers under /usr/include/android,
# libraries under /usr/lib/<multiarch>/android. The libraries are not on the
# loader path, so every binary carries an rpath to that folder. Defines the
# imported targets BoringSSL::ssl and BoringSSL::crypto.
find_path(BoringSSL_INCLUDE_DIR openssl/base.h
    PATHS /usr/include/android NO_DEFAULT_PATH)
set(_bssl_libdir /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android)
find_library(BoringSSL_SSL_LIBRARY ssl PATHS ${_bssl_libdir} NO_DEFAULT_PATH)
find_library(BoringSSL_CRYPTO_LIBRARY crypto PATHS ${_bssl_libdir} NO_DEFAULT_PATH)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(BoringSSL
    REQUIRED_VARS BoringSSL_INCLUDE_DIR BoringSSL_SSL_LIBRARY BoringSSL_CRYPTO_LIBRARY)

if(BoringSSL_FOUND AND NOT TARGET BoringSSL::crypto)
    get_filename_component(BoringSSL_LIBRARY_DIR ${BoringSSL_CRYPTO_LIBRARY} DIRECTORY)
    add_library(BoringSSL::crypto SHARED IMPORTED)
    set_target_properties(BoringSSL::crypto PROPERTIES
        IMPORTED_LOCATION ${BoringSSL_CRYPTO_LIBRARY}
        INTERFACE_SYSTEM_INCLUDE_DIRECTORIES ${BoringSSL_INCLUDE_DIR}
        INTERFACE_INCLUDE_DIRECTORIES ${BoringSSL_INCLUDE_DIR}
        INTERFACE_LINK_OPTIONS "-Wl,-rpath,${BoringSSL_LIBRARY_DIR}")
    add_library(BoringSSL::ssl SHARED IMPORTED)
    set_target_properties(BoringSSL::ssl PROPERTIES
        IMPORTED_LOCATION ${BoringSSL_SSL_LIBRARY}
        INTERFACE_LINK_LIBRARIES BoringSSL::crypto)
endif()
