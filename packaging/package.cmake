# packaging/package.cmake - the Debian package, included by the top-level
# CMakeLists.txt. From a configured and built tree:
#
#   cd build && cpack -G DEB         (or: cpack --config build/CPackConfig.cmake)
#
# makes tattle_<version>_<arch>.deb holding
#
#   /usr/lib/<multiarch>/tattle/libtattle.so   the agent
#   /usr/lib/<multiarch>/tattle/tattle-flusher its helper (found beside the agent)
#   /usr/bin/tattle                            the admin command (scripts/tattle)
#   /usr/include/tattle.h                      the header (programs link nothing)
#   /etc/tattle/tattle.conf                    the commented example, a conffile
#   /var/lib/tattle/                           root, 1733: per-uid state of users
#                                              without a usable home
#
# The package never writes /etc/ld.so.preload: `tattle enable` does, when an
# admin asks. Removing the package while /etc/ld.so.preload still names its
# agent is refused (prerm), since every program would then print a loader
# error; purging removes /var/lib/tattle. See packaging/README.md.
#
# What goes into the package is the install component "deb", left out of a
# plain `cmake --install` (which installs into $prefix/lib/tattle as before).

if(TATTLE_SANITIZE)
  # The flusher would need the sanitizer runtime: no package from such a tree.
  message(STATUS "tattle: no Debian package from a sanitizer build (TATTLE_SANITIZE=${TATTLE_SANITIZE})")
  return()
endif()

set(TATTLE_DEB_MULTIARCH "${CMAKE_LIBRARY_ARCHITECTURE}")
if(NOT TATTLE_DEB_MULTIARCH)
  find_program(TATTLE_DPKG_ARCHITECTURE dpkg-architecture)
  if(TATTLE_DPKG_ARCHITECTURE)
    execute_process(COMMAND ${TATTLE_DPKG_ARCHITECTURE} -qDEB_HOST_MULTIARCH
      OUTPUT_VARIABLE TATTLE_DEB_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
endif()
if(NOT TATTLE_DEB_MULTIARCH)
  set(TATTLE_DEB_MULTIARCH "${CMAKE_SYSTEM_PROCESSOR}-linux-gnu")
endif()
set(TATTLE_DEB_LIBDIR "usr/lib/${TATTLE_DEB_MULTIARCH}/tattle")

# The package's tree, relative to "/" (CPACK_PACKAGING_INSTALL_PREFIX).
set(_deb COMPONENT deb EXCLUDE_FROM_ALL)
install(TARGETS tattle LIBRARY DESTINATION ${TATTLE_DEB_LIBDIR}
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ ${_deb})
install(TARGETS tattle-flusher RUNTIME DESTINATION ${TATTLE_DEB_LIBDIR} ${_deb})
install(PROGRAMS ${CMAKE_SOURCE_DIR}/scripts/tattle DESTINATION usr/bin ${_deb})
if(EXISTS ${CMAKE_SOURCE_DIR}/include/tattle.h)
  install(FILES ${CMAKE_SOURCE_DIR}/include/tattle.h DESTINATION usr/include ${_deb})
endif()
install(FILES ${CMAKE_SOURCE_DIR}/etc/tattle.conf DESTINATION etc/tattle ${_deb})
install(DIRECTORY DESTINATION var/lib/tattle ${_deb})
# CMake has no sticky bit to give; the staged directory gets its mode here
# (and postinst sets it again on the machine, unless dpkg-statoverride says
# otherwise).
install(CODE "execute_process(COMMAND chmod 1733 \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/var/lib/tattle\")" ${_deb})
install(FILES ${CMAKE_SOURCE_DIR}/packaging/README.md DESTINATION usr/share/doc/tattle RENAME README.Debian ${_deb})

# Maintainer scripts: prerm knows where the agent lives.
configure_file(${CMAKE_SOURCE_DIR}/packaging/prerm.in ${CMAKE_BINARY_DIR}/packaging/prerm @ONLY)
configure_file(${CMAKE_SOURCE_DIR}/packaging/postinst ${CMAKE_BINARY_DIR}/packaging/postinst COPYONLY)
configure_file(${CMAKE_SOURCE_DIR}/packaging/postrm ${CMAKE_BINARY_DIR}/packaging/postrm COPYONLY)
file(WRITE ${CMAKE_BINARY_DIR}/packaging/conffiles "/etc/tattle/tattle.conf\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tattle)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "tattle maintainers <tattle@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "crash and context agent for native Linux programs")
set(CPACK_PACKAGE_DESCRIPTION "libtattle.so, preloaded into programs (LD_PRELOAD, or for the whole machine
/etc/ld.so.preload through 'tattle enable'), reports their fatal crashes with
symbolized stack traces, and the events they capture through tattle.h, to a
JSON-lines file and/or PostHog. Configured in /etc/tattle/tattle.conf.

Installing the package does not enable the agent: run 'tattle enable'.")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGING_INSTALL_PREFIX "/")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL deb)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS OFF)
# Dependencies from the ELF files (libc6, libdw1, libcjson1, zlib1g,
# libstdc++6, with versions) when dpkg-shlibdeps is there; else the same
# list without versions. libcurl4 is named here either way: the flusher
# opens it with dlopen when it first sends (sinks/curl_load.c), so no ELF
# file says it.
find_program(TATTLE_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(TATTLE_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libcurl4")
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6, libdw1, libcjson1, libcurl4, zlib1g, libstdc++6")
endif()
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libc6-dbg")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${CMAKE_BINARY_DIR}/packaging/conffiles;${CMAKE_BINARY_DIR}/packaging/postinst;${CMAKE_BINARY_DIR}/packaging/prerm;${CMAKE_BINARY_DIR}/packaging/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
